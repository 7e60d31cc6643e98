"""The bundled network: a small residual CNN for 1x28x28 images, with or without SE blocks.

Layout (input N x 1 x 28 x 28):
  stem   conv3x3 1->16, BN, ReLU                       28x28
  stage1 residual block 16->16, stride 2               14x14
  stage2 residual block 16->32, stride 2                7x7
  stage3 residual block 32->64, stride 2                4x4
  head   global average pool, linear 64->10

A residual block is conv3x3(stride) BN ReLU conv3x3 BN [SE] + shortcut, then ReLU. The shortcut is the
identity when shape is kept, else conv1x1(stride) BN. The SE block (Hu et al.) sits on the residual branch
before the addition, as in SE-ResNet: GlobalAveragePool -> Conv1x1 (C -> C/r) -> ReLU -> Conv1x1 (C/r -> C)
-> Sigmoid -> Mul with its own input. r = 4.
"""

import torch
from torch import nn


class SqueezeExcitation(nn.Module):
    """SE block written with 1x1 convolutions so the ONNX graph is GAP -> Conv -> Relu -> Conv -> Sigmoid -> Mul."""

    def __init__(self, channels, reduction=4):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.relu = nn.ReLU(inplace=False)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, u):
        s = self.gate(self.fc2(self.relu(self.fc1(self.pool(u)))))
        return u * s


class ResidualBlock(nn.Module):
    def __init__(self, cin, cout, stride, se):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.se = SqueezeExcitation(cout) if se else None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        else:
            self.shortcut = None
        self.relu2 = nn.ReLU(inplace=False)

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        if self.se is not None:
            y = self.se(y)
        s = x if self.shortcut is None else self.shortcut(x)
        return self.relu2(y + s)


class FashionNet(nn.Module):
    def __init__(self, se=True, widths=(16, 32, 64), classes=10):
        super().__init__()
        c0 = widths[0]
        self.stem = nn.Sequential(nn.Conv2d(1, c0, 3, 1, 1, bias=False), nn.BatchNorm2d(c0), nn.ReLU(inplace=False))
        blocks = []
        cin = c0
        for c in widths:
            blocks.append(ResidualBlock(cin, c, 2, se))
            cin = c
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def count_macs(model, shape=(1, 1, 28, 28)):
    """Multiply-adds of one forward pass at batch 1, counted with hooks on Conv2d and Linear only.

    Conv2d: out_h * out_w * out_channels * (in_channels / groups) * kh * kw. Linear: in * out.
    BatchNorm (folded into convs at inference), ReLU, Sigmoid, pooling, the SE Mul and the residual Add
    are not multiply-adds of a conv or linear and are left out; elementwise_ops counts them separately.
    """
    macs = {"conv": 0, "linear": 0, "se_conv": 0}
    elementwise = {"n": 0}
    hooks = []

    def conv_hook(name):
        def hook(m, inp, out):
            n = out.shape[2] * out.shape[3] * out.shape[1] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
            macs["se_conv" if ".se." in name else "conv"] += n
        return hook

    def linear_hook(m, inp, out):
        macs["linear"] += m.in_features * m.out_features

    def se_hook(m, inp, out):
        elementwise["n"] += out.numel()  # the channel-wise scale

    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook(name)))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, SqueezeExcitation):
            hooks.append(m.register_forward_hook(se_hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(shape))
    model.train(was_training)
    for h in hooks:
        h.remove()
    macs["total"] = macs["conv"] + macs["linear"] + macs["se_conv"]
    macs["se_scale_mults"] = elementwise["n"]
    return macs
