"""paddy: fast.ai's Road to the Top for Kaggle's Paddy Doctor as a package: spec → train → TTA → ensemble → submit."""
__version__ = '0.1.0'
