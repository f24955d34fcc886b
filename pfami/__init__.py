"""PFAMI: probabilistic-fluctuation membership inference against generative models."""
