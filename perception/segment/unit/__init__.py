"""UniT-style tumour model (torch + MONAI): config, model, losses, data, synthetic tumours, training, inference.

Importing this package imports nothing heavy; the submodules need torch and MONAI (the seg venv).
"""
