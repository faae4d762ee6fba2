"""Image classifiers of the vision tasks: CIFAR ResNets, VGG-16 with batch norm, the MNIST CNN.

The ResNets follow the CIFAR adaptation of the reference (a 3×3 stride-1 stem and no max-pool,
so 32×32 inputs keep their resolution into the first stage). ResNet-18 uses torchvision's module
names and initialisation, so its ``state_dict`` loads into torchvision's ``resnet18`` with the
same two stem changes and vice versa.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

VGG16_LAYERS: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm and an identity (or 1×1 projection) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class CifarResNet(nn.Module):
    """ResNet with a 3×3 stride-1 stem and no max-pool, for 32×32 images.

    Args:
        blocks: Basic blocks per stage (ResNet-18: ``(2, 2, 2, 2)``).
        widths: Channels per stage (ResNet-18: ``(64, 128, 256, 512)``); stages after the first halve
            the resolution.
        n_classes: Output classes.
        in_channels: Input channels.
    """

    def __init__(self, blocks: Sequence[int], widths: Sequence[int], n_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        if len(blocks) != len(widths):
            raise ValueError(f"blocks {tuple(blocks)} and widths {tuple(widths)} must have the same length.")
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        in_planes = widths[0]
        for i, (n, planes) in enumerate(zip(blocks, widths, strict=True)):
            stage = []
            for b in range(n):
                stage.append(BasicBlock(in_planes, planes, stride=2 if (i > 0 and b == 0) else 1))
                in_planes = planes
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
        self.n_stages = len(blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, n_classes)
        _torchvision_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for i in range(self.n_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


class VGG(nn.Module):
    """VGG with batch norm for 32×32 inputs: the conv stack reduces to 1×1×512, then one linear layer."""

    def __init__(self, layers: Sequence[int | str], n_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        modules: list[nn.Module] = []
        channels = in_channels
        for item in layers:
            if item == "M":
                modules.append(nn.MaxPool2d(2, 2))
            else:
                modules += [nn.Conv2d(channels, int(item), 3, padding=1), nn.BatchNorm2d(int(item)), nn.ReLU(inplace=True)]
                channels = int(item)
        self.features = nn.Sequential(*modules)
        self.classifier = nn.Linear(channels, n_classes)
        _torchvision_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class MnistCNN(nn.Module):
    """The PyTorch examples' MNIST network: two 3×3 convs, max-pool, dropout, two linear layers."""

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(inplace=True), nn.Conv2d(32, 64, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Dropout(0.25)
        )
        self.classifier = nn.Sequential(nn.Linear(9216, 128), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(128, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class MnistMLP(nn.Module):
    """A one-hidden-layer MLP on flattened 28×28 images (784-``hidden``-10, ReLU)."""

    def __init__(self, n_classes: int = 10, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _torchvision_init(model: nn.Module) -> None:
    # torchvision's ResNet/VGG scheme, so results are comparable with runs that use its models.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def resnet18(n_classes: int) -> CifarResNet:
    """ResNet-18, CIFAR stem (11.2M parameters for 100 classes)."""
    return CifarResNet((2, 2, 2, 2), (64, 128, 256, 512), n_classes)


def resnet8(n_classes: int) -> CifarResNet:
    """He et al.'s CIFAR ResNet-8 (three stages of one block, 16/32/64 channels, ~78k parameters)."""
    return CifarResNet((1, 1, 1), (16, 32, 64), n_classes)


def vgg16(n_classes: int) -> VGG:
    """VGG-16 with batch norm for CIFAR (14.7M parameters)."""
    return VGG(VGG16_LAYERS, n_classes)


def mnist_cnn(n_classes: int) -> MnistCNN:
    return MnistCNN(n_classes)


def mnist_mlp(n_classes: int) -> MnistMLP:
    return MnistMLP(n_classes)


#: Model name → constructor ``f(n_classes)``; the vision tasks' ``model`` option picks one.
MODELS: dict[str, Callable[[int], nn.Module]] = {"resnet18": resnet18, "resnet8": resnet8, "vgg16": vgg16, "mnist_cnn": mnist_cnn, "mnist_mlp": mnist_mlp}

#: Models that take 3×32×32 inputs (the others take 1×28×28).
CIFAR_MODELS = ("resnet18", "resnet8", "vgg16")

#: Models of the MNIST task.
MNIST_MODELS = ("mnist_cnn", "mnist_mlp")


def build_model(name: str, n_classes: int) -> nn.Module:
    """Construct model ``name`` (one of :data:`MODELS`)."""
    try:
        return MODELS[name](n_classes)
    except KeyError:
        raise ValueError(f"Unknown model {name!r}; choose one of {sorted(MODELS)}.") from None
