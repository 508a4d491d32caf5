"""shiftlab: fine-tune pretrained models and see what each recipe gains ID and costs OOD."""

__version__ = "0.1.0"
