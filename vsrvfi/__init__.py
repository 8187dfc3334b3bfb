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


def only_as_subpackage(name: str) -> None:
    """Called first by each top-level folder's __init__: imported by its bare name (`import models` from
    the repository root) it would be a second, separate copy of `vsrvfi.models` (an empty model
    registry, other classes), so that import fails with one line naming the right one."""
    if not name.startswith("vsrvfi."):
        raise ImportError(f"import vsrvfi.{name} (not {name}): the repository's top-level folders are "
                          f"subpackages of vsrvfi, and a bare import would load a second, separate copy")
