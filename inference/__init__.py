"""Using trained models on whole videos: frame I/O, SR and VFI runners, and scoring (see tools/)."""
from vsrvfi import only_as_subpackage

only_as_subpackage(__name__)
