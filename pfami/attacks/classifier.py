"""The small ResNet that PFAMI_NNs (and SecMI_NNs) put on their feature images.

3x3 conv to 64 channels, two stages of two basic blocks (64 and 128 channels, the second
stage strided), global average pooling, a linear layer to two classes; Adam, full batch.
Inputs are standardised with statistics of the training features only.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.shortcut = nn.Identity() if stride == 1 and in_channels == out_channels else nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class MembershipResNet(nn.Module):
    def __init__(self, in_channels: int, feature_mean: torch.Tensor, feature_std: torch.Tensor):
        super().__init__()
        self.register_buffer("feature_mean", feature_mean)
        self.register_buffer("feature_std", feature_std)
        self.network = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            BasicBlock(64, 64, 1), BasicBlock(64, 64, 1), BasicBlock(64, 128, 2), BasicBlock(128, 128, 1),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 2))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.network((features - self.feature_mean) / self.feature_std)


def fit_classifier(features: np.ndarray, is_member: np.ndarray, epochs: int, learning_rate: float,
                   seed: int) -> MembershipResNet:
    """Train on ``features`` [R, C, H, W] with labels ``is_member`` for a fixed number of epochs."""
    if len(np.unique(is_member)) != 2:
        raise ValueError("the classifier needs both members and non-members in its training features")
    torch.manual_seed(seed)
    inputs = torch.as_tensor(features, dtype=torch.float32)
    labels = torch.as_tensor(is_member, dtype=torch.long)
    mean = inputs.mean(dim=0, keepdim=True)
    std = inputs.std(dim=0, keepdim=True).clamp_min(1e-8)
    model = MembershipResNet(inputs.shape[1], mean[0], std[0])
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    model.train()
    for _ in range(epochs):
        loss = nn.functional.cross_entropy(model(inputs), labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return model.eval()


@torch.inference_mode()
def member_scores(model: MembershipResNet, features: np.ndarray) -> np.ndarray:
    """Log-odds of membership per record (higher = member)."""
    logits = model.eval()(torch.as_tensor(features, dtype=torch.float32))
    return (logits[:, 1] - logits[:, 0]).numpy().astype(np.float64)


def cross_fitted_scores(features: np.ndarray, is_member: np.ndarray, new_features: np.ndarray, epochs: int,
                        learning_rate: float, seed: int, folds: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Cross-fitting: one classifier per fold, each trained on the other folds.

    Returns (out-of-fold scores of the training records, used to fit a decision threshold without
    in-sample bias; scores of ``new_features``, the mean over the fold classifiers). The cost is
    about that of one classifier trained on all records."""
    fold_of = np.random.default_rng(seed).permutation(len(features)) % folds
    out_of_fold, new_scores = np.empty(len(features)), np.zeros(len(new_features))
    for fold in range(folds):
        held_out = fold_of == fold
        model = fit_classifier(features[~held_out], is_member[~held_out], epochs, learning_rate, seed + fold)
        out_of_fold[held_out] = member_scores(model, features[held_out])
        new_scores += member_scores(model, new_features) / folds
    return out_of_fold, new_scores


def ensemble_scores(features: np.ndarray, is_member: np.ndarray, new_features: np.ndarray, epochs: int,
                    learning_rate: float, seed: int, classifiers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``cross_fitted_scores`` of ``classifiers`` classifiers (seeds from ``classifier_seeds``),
    averaged. One classifier's AUC depends on its seed by about as much as its bootstrap interval
    is wide (the classifier-seed ablation); the mean of several depends on it less. With one
    classifier this is ``cross_fitted_scores`` exactly."""
    from pfami.seeding import classifier_seeds

    runs = [cross_fitted_scores(features, is_member, new_features, epochs, learning_rate, classifier_seed)
            for classifier_seed in classifier_seeds(seed, classifiers)]
    return tuple(np.mean(np.stack([run[part] for run in runs]), axis=0) for part in (0, 1))
