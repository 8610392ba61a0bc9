"""Any transformers image-text-to-text model without a family file of its own, whose visual tokens enter the
decoder's sequence at image or video placeholder ids: everything comes from the shared defaults of
models/base.py (SHARED), filled in by models/__init__.py. What this path reads of a model, and what it refuses,
is in docs/families.md."""

NAME = "generic"
MODEL_CLASSES = ()  # it serves what no family file claims (models.family_of)
