"""sicompress: compress VGG16 on CIFAR-10 with the Separation Index."""

__version__ = "0.1.0"
