"""The embedded model's world (models/shapes_llava/scenes.py) as an offline lmms-eval task; see make.py."""
