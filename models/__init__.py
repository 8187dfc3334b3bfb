from vsrvfi import only_as_subpackage

only_as_subpackage(__name__)
