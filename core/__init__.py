"""The shared core below everything else: errors, atomic files, media probing and ffmpeg, the data-set
layout and manifest, and the command-line convention. It imports nothing else of the project."""
from vsrvfi import only_as_subpackage

only_as_subpackage(__name__)
