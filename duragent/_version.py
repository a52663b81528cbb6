"""The release, read by the build (``[tool.hatch.version]``) and by ``duragent.__version__``."""

__version__ = "0.2.0"
