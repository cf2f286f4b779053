"""The course's U-Nets in PyTorch, with the course's module names, so their state_dicts match nanodiff's
parameter names one to one (the PyTorch twin of nn/dli_unet.c and nn/dli_unet_v1.c).

UNet: utils/UNet_utils.py of notebooks 03-06 (GroupNorm/GELU blocks, rearrange pooling, time and class
embeddings); c_embed_dim=0 gives notebook 03's unconditional model. The course hard-codes the GroupNorm
group counts at 8 and 32; they are arguments here so that narrow test models stay valid.
BatchNormUNet: the Conv/BatchNorm/ReLU U-Net of notebooks 01 (t_embed_dim=0) and 02 (t_embed_dim=1).
"""
import math

import torch
import torch.nn as nn


# ---------------------------------------------------------------------------------------------------
# notebooks 03-06 (utils/UNet_utils.py)

class Rearrange(nn.Module):
    """einops.layers.torch.Rearrange("b c (h p1) (w p2) -> b (c p1 p2) h w", p1=2, p2=2), written out."""

    def forward(self, x):
        b, c, h, w = x.shape
        x = x.reshape(b, c, h // 2, 2, w // 2, 2)
        return x.permute(0, 1, 3, 5, 2, 4).reshape(b, c * 4, h // 2, w // 2)


class GELUConvBlock(nn.Module):
    def __init__(self, in_ch, out_ch, group_size):
        super().__init__()
        layers = [nn.Conv2d(in_ch, out_ch, 3, 1, 1), nn.GroupNorm(group_size, out_ch), nn.GELU()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class RearrangePoolBlock(nn.Module):
    def __init__(self, in_chs, group_size):
        super().__init__()
        self.rearrange = Rearrange()
        self.conv = GELUConvBlock(4 * in_chs, in_chs, group_size)

    def forward(self, x):
        return self.conv(self.rearrange(x))


class DownBlock(nn.Module):
    def __init__(self, in_chs, out_chs, group_size):
        super().__init__()
        layers = [GELUConvBlock(in_chs, out_chs, group_size), GELUConvBlock(out_chs, out_chs, group_size),
                  RearrangePoolBlock(out_chs, group_size)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class UpBlock(nn.Module):
    def __init__(self, in_chs, out_chs, group_size):
        super().__init__()
        layers = [nn.ConvTranspose2d(2 * in_chs, out_chs, 2, 2)]
        layers += [GELUConvBlock(out_chs, out_chs, group_size) for _ in range(4)]
        self.model = nn.Sequential(*layers)

    def forward(self, x, skip):
        return self.model(torch.cat((x, skip), 1))


class SinusoidalPositionEmbedBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, time):
        half_dim = self.dim // 2
        embeddings = math.log(10000) / (half_dim - 1)
        embeddings = torch.exp(torch.arange(half_dim, device=time.device) * -embeddings)
        embeddings = time[:, None] * embeddings[None, :]
        return torch.cat((embeddings.sin(), embeddings.cos()), dim=-1)


class EmbedBlock(nn.Module):
    def __init__(self, input_dim, emb_dim):
        super().__init__()
        self.input_dim = input_dim
        layers = [nn.Linear(input_dim, emb_dim), nn.GELU(), nn.Linear(emb_dim, emb_dim),
                  nn.Unflatten(1, (emb_dim, 1, 1))]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x.view(-1, self.input_dim))


class ResidualConvBlock(nn.Module):
    def __init__(self, in_chs, out_chs, group_size):
        super().__init__()
        self.conv1 = GELUConvBlock(in_chs, out_chs, group_size)
        self.conv2 = GELUConvBlock(out_chs, out_chs, group_size)

    def forward(self, x):
        x1 = self.conv1(x)
        return x1 + self.conv2(x1)


class UNet(nn.Module):
    def __init__(self, T, img_ch, img_size, down_chs=(64, 64, 128), t_embed_dim=8, c_embed_dim=10,
                 small_group_size=8, big_group_size=32):
        super().__init__()
        self.T = T
        up_chs = down_chs[::-1]
        latent_image_size = img_size // 4

        self.down0 = ResidualConvBlock(img_ch, down_chs[0], small_group_size)
        self.down1 = DownBlock(down_chs[0], down_chs[1], big_group_size)
        self.down2 = DownBlock(down_chs[1], down_chs[2], big_group_size)
        self.to_vec = nn.Sequential(nn.Flatten(), nn.GELU())

        self.dense_emb = nn.Sequential(
            nn.Linear(down_chs[2] * latent_image_size ** 2, down_chs[1]), nn.ReLU(),
            nn.Linear(down_chs[1], down_chs[1]), nn.ReLU(),
            nn.Linear(down_chs[1], down_chs[2] * latent_image_size ** 2), nn.ReLU())
        self.sinusoidaltime = SinusoidalPositionEmbedBlock(t_embed_dim)
        self.temb_1 = EmbedBlock(t_embed_dim, up_chs[0])
        self.temb_2 = EmbedBlock(t_embed_dim, up_chs[1])
        self.c_embed_dim = c_embed_dim
        if c_embed_dim:
            self.c_embed1 = EmbedBlock(c_embed_dim, up_chs[0])
            self.c_embed2 = EmbedBlock(c_embed_dim, up_chs[1])

        self.up0 = nn.Sequential(nn.Unflatten(1, (up_chs[0], latent_image_size, latent_image_size)),
                                 GELUConvBlock(up_chs[0], up_chs[0], big_group_size))
        self.up1 = UpBlock(up_chs[0], up_chs[1], big_group_size)
        self.up2 = UpBlock(up_chs[1], up_chs[2], big_group_size)
        self.out = nn.Sequential(nn.Conv2d(2 * up_chs[-1], up_chs[-1], 3, 1, 1),
                                 nn.GroupNorm(small_group_size, up_chs[-1]), nn.ReLU(),
                                 nn.Conv2d(up_chs[-1], img_ch, 3, 1, 1))

    def forward(self, x, t, c=None, c_mask=None):
        down0 = self.down0(x)
        down1 = self.down1(down0)
        down2 = self.down2(down1)
        latent_vec = self.dense_emb(self.to_vec(down2))

        t = self.sinusoidaltime(t.to(x.dtype) / self.T)  # the course: t.float(); same in float32
        temb_1 = self.temb_1(t)
        temb_2 = self.temb_2(t)

        up0 = self.up0(latent_vec)
        if self.c_embed_dim:
            c = c * c_mask
            up1 = self.up1(self.c_embed1(c) * up0 + temb_1, down2)
            up2 = self.up2(self.c_embed2(c) * up1 + temb_2, down1)
        else:
            up1 = self.up1(up0 + temb_1, down2)
            up2 = self.up2(up1 + temb_2, down1)
        return self.out(torch.cat((up2, down0), 1))


# ---------------------------------------------------------------------------------------------------
# notebooks 01-02

class BatchNormDownBlock(nn.Module):
    """Notebook 01/02's DownBlock: two Conv/BatchNorm/ReLU, then MaxPool2d(2)."""

    def __init__(self, in_chs, out_chs):
        super().__init__()
        kernel_size, stride, padding = 3, 1, 1
        layers = [nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding), nn.BatchNorm2d(out_chs), nn.ReLU(),
                  nn.Conv2d(out_chs, out_chs, kernel_size, stride, padding), nn.BatchNorm2d(out_chs), nn.ReLU(),
                  nn.MaxPool2d(2)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class BatchNormUpBlock(nn.Module):
    """Notebook 01/02's UpBlock: cat(x, skip), ConvTranspose2d(k3 s2 p1 op1)/BatchNorm/ReLU, Conv/BatchNorm/ReLU."""

    def __init__(self, in_chs, out_chs):
        super().__init__()
        kernel_size, stride, padding, strideT, out_paddingT = 3, 1, 1, 2, 1
        layers = [nn.ConvTranspose2d(2 * in_chs, out_chs, kernel_size, strideT, padding, out_paddingT),
                  nn.BatchNorm2d(out_chs), nn.ReLU(),
                  nn.Conv2d(out_chs, out_chs, kernel_size, stride, padding), nn.BatchNorm2d(out_chs), nn.ReLU()]
        self.model = nn.Sequential(*layers)

    def forward(self, x, skip):
        return self.model(torch.cat((x, skip), 1))


class ReLUEmbedBlock(nn.Module):
    """Notebook 02's EmbedBlock: ReLU between the two Linears (notebook 03 changed it to GELU)."""

    def __init__(self, input_dim, emb_dim):
        super().__init__()
        self.input_dim = input_dim
        layers = [nn.Linear(input_dim, emb_dim), nn.ReLU(), nn.Linear(emb_dim, emb_dim),
                  nn.Unflatten(1, (emb_dim, 1, 1))]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x.view(-1, self.input_dim))


class BatchNormUNet(nn.Module):
    """Notebook 01's UNet (t_embed_dim=0: dense_emb defined but not called) and notebook 02's (t_embed_dim=1)."""

    def __init__(self, T, img_ch, img_size, down_chs=(16, 32, 64), t_embed_dim=1):
        super().__init__()
        self.T = T
        up_chs = down_chs[::-1]
        latent_image_size = img_size // 4
        self.t_embed_dim = t_embed_dim

        self.down0 = nn.Sequential(nn.Conv2d(img_ch, down_chs[0], 3, padding=1), nn.BatchNorm2d(down_chs[0]),
                                   nn.ReLU())
        self.down1 = BatchNormDownBlock(down_chs[0], down_chs[1])
        self.down2 = BatchNormDownBlock(down_chs[1], down_chs[2])
        self.to_vec = nn.Sequential(nn.Flatten(), nn.ReLU())

        self.dense_emb = nn.Sequential(
            nn.Linear(down_chs[2] * latent_image_size ** 2, down_chs[1]), nn.ReLU(),
            nn.Linear(down_chs[1], down_chs[1]), nn.ReLU(),
            nn.Linear(down_chs[1], down_chs[2] * latent_image_size ** 2), nn.ReLU())
        if t_embed_dim:
            self.temb_1 = ReLUEmbedBlock(t_embed_dim, up_chs[0])
            self.temb_2 = ReLUEmbedBlock(t_embed_dim, up_chs[1])

        self.up0 = nn.Sequential(nn.Unflatten(1, (up_chs[0], latent_image_size, latent_image_size)),
                                 nn.Conv2d(up_chs[0], up_chs[0], 3, padding=1), nn.BatchNorm2d(up_chs[0]),
                                 nn.ReLU())
        self.up1 = BatchNormUpBlock(up_chs[0], up_chs[1])
        self.up2 = BatchNormUpBlock(up_chs[1], up_chs[2])
        self.out = nn.Sequential(nn.Conv2d(up_chs[-1], up_chs[-1], 3, 1, 1), nn.BatchNorm2d(up_chs[-1]), nn.ReLU(),
                                 nn.Conv2d(up_chs[-1], img_ch, 3, 1, 1))

    def forward(self, x, t=None):
        down0 = self.down0(x)
        down1 = self.down1(down0)
        down2 = self.down2(down1)
        latent_vec = self.to_vec(down2)
        if not self.t_embed_dim:
            up0 = self.up0(latent_vec)
            return self.out(self.up2(self.up1(up0, down2), down1))
        latent_vec = self.dense_emb(latent_vec)
        t = t.to(x.dtype) / self.T  # the course: t.float(); same in float32
        up0 = self.up0(latent_vec)
        up1 = self.up1(up0 + self.temb_1(t), down2)
        up2 = self.up2(up1 + self.temb_2(t), down1)
        return self.out(up2)
