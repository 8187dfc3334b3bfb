"""The encoding library of data preparation (no CLI, no manifest writes): codecs and their options
(codecs.py), encoder detection (encoders.py), one scene's ffmpeg command and the tier checks
(command.py), and sizing the run to the machine (sizing.py)."""
