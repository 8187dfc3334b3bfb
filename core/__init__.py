"""The shared core below everything else: errors, atomic files, media probing and ffmpeg, the data-set
layout and manifest, and the command-line convention. It imports nothing else of the project."""
