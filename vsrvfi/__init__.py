"""dali-vsr-vfi: train video super-resolution and frame interpolation models on GPU-decoded video.

The import package. Its subpackages are the repository's top-level folders (linked here, copied
into wheels), layered bottom to top with no import running back up:

    core        errors, atomic files, media probing and ffmpeg, the data-set layout and manifest, CLI
    models      architectures, losses, metrics, checkpoints            (imports core)
    pipelines   DALI video loaders and the PNG baseline                (imports core)
    inference   video I/O, upscaling, interpolation, evaluation        (imports core, models, pipelines)
    trainers    typed config, recipes, the training engine; validation (imports core, models, pipelines,
                scored with inference's evaluation                      inference)
    tools       entry points: data preparation and the video tools     (imports everything above)
    configs     the built-in YAML configs (package data)
"""
__version__ = "0.1.0"
