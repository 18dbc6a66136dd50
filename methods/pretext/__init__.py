"""The self-supervised methods, one file each; every public module here is a method the registry loads
(``_name.py`` files are their helpers)."""
