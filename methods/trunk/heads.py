"""The heads the methods put on top of the trunk's pool5 output."""

from __future__ import annotations

from methods._lazy import lazy
from methods.trunk.arch import init_weights

nn = lazy("torch.nn")

__all__ = ["mlp_head"]


def mlp_head(in_features: int, num_classes: int, hidden: int = 4096) -> nn.Sequential:
    """RotNet's classifier: two bias-free FC+BN+ReLU blocks, then a linear layer (``hidden=0``: linear)."""
    layers: list[nn.Module] = []
    width = in_features
    if hidden > 0:
        for _ in range(2):
            layers += [nn.Linear(width, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
            width = hidden
    layers.append(nn.Linear(width, num_classes))
    head = nn.Sequential(*layers)
    init_weights(head)
    return head
