"""Variational autoencoders as Pyro model/guide pairs.

The generative model and the amortised posterior (Kingma & Welling 2014):

    model:  z ~ N(0, I),  x ~ p_theta(x | z)        (Bernoulli, Gaussian or discretised logistic)
    guide:  z = mu_phi(x) + sigma_phi(x) * eps,  eps ~ N(0, I)     (the reparameterisation trick)

trained by maximising ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z)). Options: the KL
computed analytically (``objective=analytic``, Pyro's TraceMeanField_ELBO), a KL weight beta with
linear warm-up (beta-VAE, Higgins et al. 2017), the importance-weighted bound (``objective=iwae``,
Burda et al. 2016), a label-conditional model (Sohn et al. 2015), and normalizing-flow posteriors
(``guide=iaf|planar|radial``: Rezende & Mohamed 2015; Kingma et al. 2016).

Blur: decoder means averaged over a posterior are smooth, and prior draws often land in holes of
the aggregate posterior q(z) = E_x q(z | x) where the decoder has never been trained. The
``aggregate`` sampler fits a Gaussian mixture to the training codes after training and draws z
from it (ex-post density estimation: Ghosh et al. 2020; two-stage VAE: Dai & Wipf 2019), which
gives sharp, recognisable samples; ``prior`` is the textbook sampler, ``noisy`` adds p(x | z)'s
own noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import pyro
import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch
import torch.nn.functional as F
from pyro import poutine
from torch import nn

from probgen.config import choice
from probgen.evaluation import chunked
from probgen.models.likelihoods import observation
from probgen.nn.conv import ConvDecoder, ConvEncoder
from probgen.nn.mlp import MLP, activation
from probgen.programs import predictive
from probgen.programs.derived import ProgramModel

if TYPE_CHECKING:
    from probgen.models.base import Batch, DataInfo, Labels


@dataclass
class VAEConfig:
    """Hyperparameters of :class:`VAE`."""

    latent_dim: int = 16
    hidden: tuple[int, ...] = (400,)
    activation: str = "softplus"
    # auto: the convolutional encoder/decoder for images of 16x16 and up, else the MLP (at
    # 8x8 the conv pair collapses its posterior: one digit for every draw)
    net: str = choice("auto", ("auto", "mlp", "conv"))
    likelihood: str = choice("auto", ("auto", "bernoulli", "gaussian", "discretized"))
    objective: str = choice("elbo", ("elbo", "analytic", "iwae"))
    num_particles: int = 1
    beta: float = 1.0
    warmup_steps: int = 0
    conditional: bool = False
    guide: str = choice("gaussian", ("gaussian", "iaf", "planar", "radial"))
    num_flows: int = 2
    aggregate_components: int = 10


class VAE(ProgramModel):
    """Variational autoencoder: z ~ N(0, I), x ~ p(x | z), amortised guide q(z | x), by SVI.

    ``model`` and ``guide`` are Pyro programs; the objective, held-out ELBO, importance-sampled
    log p(x), ``encode``/``decode`` and the ``noisy`` sampler are derived from them as for any
    program (:class:`~probgen.programs.derived.ProgramModel`). What the VAE adds: the KL weight
    and its warm-up, and the aggregate-posterior sampler. See the module docstring.
    """

    Config = VAEConfig
    default_steps = 3000
    samplers = ("aggregate", "prior", "noisy")

    def __init__(self, config: VAEConfig, data_info: DataInfo) -> None:
        super().__init__(config, data_info)
        c = config
        if c.latent_dim < 1 or c.num_particles < 1 or not c.beta > 0:
            raise ValueError("latent_dim and num_particles must be >= 1, and beta > 0")
        if c.conditional and not data_info.num_classes:
            raise ValueError("conditional=true needs labelled data")
        if c.net == "conv" and data_info.kind != "image":
            raise ValueError("net=conv needs image data")
        self.net = c.net if c.net != "auto" else ("conv" if data_info.large_image else "mlp")
        if c.objective == "analytic" and c.guide != "gaussian":
            raise ValueError("objective=analytic needs guide=gaussian (no closed-form KL)")
        self.likelihood = self._resolve_likelihood(c.likelihood, data_info)
        # Bernoulli on intensities and the discretised logistic score the pixel values as given
        self.discrete_likelihood = self.likelihood in ("bernoulli", "discretized")
        self.event_shape = tuple(data_info.event_shape)
        self.num_classes = data_info.num_classes if c.conditional else 0
        d, z, k = data_info.dim, c.latent_dim, self.num_classes
        width = c.hidden[-1] if c.hidden else 64
        if self.net == "conv":
            self.encoder_body = nn.Sequential(
                ConvEncoder(self.event_shape, width, act=c.activation), activation(c.activation)
            )
            self.decoder_net = ConvDecoder(z + k, self.event_shape, act=c.activation)
        else:
            self.encoder_body = nn.Sequential(
                nn.Flatten(), MLP(d, c.hidden[:-1], width, c.activation), activation(c.activation)
            )
            self.decoder_net = MLP(z + k, tuple(reversed(c.hidden)), d, c.activation)
        self.encoder_head = nn.Linear(width + k, 2 * z)
        self.obs_log_scale = nn.Parameter(torch.full(self.event_shape, 0.5413))  # softplus -> 1
        if c.guide != "gaussian":
            make = {
                # the numerically stable, gated IAF step of Kingma et al. (2016), eq. (14):
                # z <- sigma * z + (1 - sigma) * m, which starts close to the identity
                "iaf": partial(T.conditional_affine_autoregressive, stable=True),
                "planar": T.conditional_planar,
                "radial": T.conditional_radial,
            }[c.guide]
            self.flows = nn.ModuleList(make(z, width + k) for _ in range(c.num_flows))
            self.register_buffer("flip", torch.arange(z - 1, -1, -1))
        m = c.aggregate_components
        self.register_buffer("agg_fitted", torch.zeros((), dtype=torch.bool))
        self.register_buffer("agg_logits", torch.zeros(m))
        self.register_buffer("agg_means", torch.zeros(m, z))
        self.register_buffer("agg_scale_tril", torch.eye(z).expand(m, z, z).clone())
        self.kl_weight = c.beta

    @staticmethod
    def _resolve_likelihood(name: str, data_info: DataInfo) -> str:
        if name != "auto":
            if name == "discretized" and not data_info.levels:
                raise ValueError("likelihood=discretized needs integer-valued images")
            return name
        return "bernoulli" if data_info.kind == "image" else "gaussian"

    # -- networks ---------------------------------------------------------------------------
    def _one_hot(self, y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.one_hot(y, self.num_classes).to(like.dtype)

    def _encode(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.encoder_body(x)
        if self.num_classes:
            h = torch.cat([h, self._one_hot(y, h)], -1)
        loc, s = self.encoder_head(h).chunk(2, dim=-1)
        return loc, F.softplus(s) + 1e-5, h

    def _decode_params(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            z = torch.cat([z, self._one_hot(y, z).expand(*z.shape[:-1], self.num_classes)], -1)
        out = self.decoder_net(z)
        return out.reshape(*z.shape[:-1], *self.event_shape)

    def _posterior(
        self, loc: torch.Tensor, scale: torch.Tensor, h: torch.Tensor
    ) -> dist.TorchDistribution:
        base = dist.Normal(loc, scale).to_event(1)
        if self.config.guide == "gaussian":
            return base
        transforms = []
        for i, flow in enumerate(self.flows):
            if i:
                transforms.append(T.Permute(self.flip))
            transforms.append(flow.condition(h))
        return dist.TransformedDistribution(base, transforms)

    # -- the Pyro programs ------------------------------------------------------------------
    def model(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        batch_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """z ~ N(0, I); x ~ p(x | z, y), over the rows of ``x``."""
        n = x.shape[0]
        if self.num_classes and y is None:
            y = torch.randint(self.num_classes, (n,), device=x.device)
        with pyro.plate("data", n, dim=-1):
            with poutine.scale(scale=self.kl_weight):
                prior = dist.Normal(x.new_zeros(self.config.latent_dim), 1.0)
                z = pyro.sample("z", prior.expand([n, self.config.latent_dim]).to_event(1))
            params = self._decode_params(z, y)
            likelihood = observation(
                self.likelihood,
                params,
                self.obs_log_scale,
                self.data_info.levels,
                len(self.event_shape),
            )
            return pyro.sample("x", likelihood, obs=x)

    def guide(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        batch_index: torch.Tensor | None = None,
    ) -> None:
        """q(z | x, y): z = mu(x) + sigma(x) * eps, optionally pushed through conditional flows."""
        with pyro.plate("data", x.shape[0], dim=-1):
            with poutine.scale(scale=self.kl_weight):
                loc, scale, h = self._encode(x, y)
                pyro.sample("z", self._posterior(loc, scale, h))

    # -- what the VAE chooses -------------------------------------------------------------
    def objective(self) -> dict:
        """``elbo`` -> Trace_ELBO, ``analytic`` -> TraceMeanField_ELBO, ``iwae`` -> the
        importance-weighted bound (RenyiELBO with alpha = 0), with ``num_particles``."""
        name = {"elbo": "trace", "analytic": "meanfield", "iwae": "iwae"}[self.config.objective]
        return {"name": name, "particles": self.config.num_particles, "renyi_alpha": 0.0}

    def takes_labels(self) -> bool:
        """Whether the VAE is class-conditional (``conditional=true`` on labelled data)."""
        return bool(self.num_classes)

    # -- training -----------------------------------------------------------------------------
    def train_step(
        self, batch: Batch, optimizers: list[torch.optim.Optimizer], step: int
    ) -> dict[str, torch.Tensor]:
        """One update with the KL weight ramped linearly over ``warmup_steps`` (if any)."""
        c = self.config
        if c.warmup_steps <= 0:
            return super().train_step(batch, optimizers, step)
        self.kl_weight = c.beta * min(1.0, (step + 1) / c.warmup_steps)
        try:
            logs = super().train_step(batch, optimizers, step)
        finally:
            weight, self.kl_weight = self.kl_weight, c.beta
        logs["kl_weight"] = torch.tensor(weight)
        return logs

    def on_fit_end(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """Fit the aggregate-posterior mixture to the codes of the training set."""
        from sklearn.mixture import GaussianMixture

        codes = chunked(self.encode, x, y, 512).double().cpu().numpy()
        m = min(self.config.aggregate_components, len(codes))
        gmm = GaussianMixture(m, covariance_type="full", reg_covar=1e-4, random_state=0).fit(codes)
        k = self.config.aggregate_components
        logits = torch.full((k,), -torch.inf, dtype=torch.float64)
        logits[:m] = torch.from_numpy(gmm.weights_).log()
        means = torch.zeros(k, codes.shape[1], dtype=torch.float64)
        means[:m] = torch.from_numpy(gmm.means_)
        tril = torch.eye(codes.shape[1], dtype=torch.float64).expand(k, -1, -1).clone()
        tril[:m] = torch.linalg.cholesky(torch.from_numpy(gmm.covariances_))
        self.agg_logits.copy_(logits)
        self.agg_means.copy_(means)
        self.agg_scale_tril.copy_(tril)
        self.agg_fitted.fill_(True)

    # -- using a fitted model ----------------------------------------------------------------
    def _aggregate_prior(self, n: int) -> torch.Tensor:
        mix = dist.Categorical(logits=self.agg_logits)
        comp = dist.MultivariateNormal(self.agg_means, scale_tril=self.agg_scale_tril)
        return dist.MixtureSameFamily(mix, comp).sample((n,))

    @torch.no_grad()
    def generate(
        self, n: int, y: Labels = None, sampler: str | None = None, **options: Any
    ) -> torch.Tensor:
        """``aggregate`` (default; sharp): the model's decoder mean at z from the fitted
        aggregate posterior; ``prior``: at z ~ N(0, I); ``noisy``: the model run forward."""
        sampler = self.choose_sampler(sampler)
        ref = self.agg_means
        if self.num_classes:
            y = _labels(y, n, self.num_classes, ref.device)
        if sampler == "noisy":
            self.ensure_setup(predictive.placeholder(self, n), y)
            return predictive.draw(self, n, y)
        if sampler == "aggregate" and bool(self.agg_fitted):
            z = self._aggregate_prior(n).to(ref.dtype)
        else:
            z = torch.randn(n, self.config.latent_dim, device=ref.device)
        return self.decode(z, y)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.encode(x, y), y)


def _labels(y: torch.Tensor | None, n: int, num_classes: int, device: torch.device) -> torch.Tensor:
    if y is None:
        return torch.arange(n, device=device) % num_classes
    y = torch.as_tensor(y, device=device).reshape(-1)
    if y.numel() == 1:
        y = y.expand(n)
    if ((y < 0) | (y >= num_classes)).any():
        raise ValueError(f"class labels must be in 0..{num_classes - 1}")
    return y.long()
