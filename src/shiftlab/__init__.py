"""shiftlab: fine-tune pretrained models and see what each recipe gains ID and costs OOD."""

__version__ = "0.1.0"


def load(folder: str) -> object:
    """A model ``shiftlab export`` wrote, through its own library: ``.predict(inputs)`` gives
    class probabilities (:mod:`shiftlab.exported`)."""
    from shiftlab.exported import load as load_export

    return load_export(folder)
