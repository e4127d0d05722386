"""Compose every config the project offers (the default, each recipe, experiment, variant,
study and search, each model/loss/optim/data/budget/trainer swap, tricks lists) and write them,
resolved, to one JSON file: run it before and after a conf/ change and diff the two.
    python tools/config_dump.py /tmp/before.json"""
import json
import sys
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from gan.io.config import CONF_DIR, compose_train

C = Path(CONF_DIR)


def names(g):
    return sorted(p.stem for p in (C / g).glob("*.yaml"))


cases = {"default": []}
for r in names("recipe"):
    cases[f"recipe={r}"] = [f"recipe={r}"]
for base in ["", "recipe=unconditional"]:
    pre = [base] if base else []
    for g in ["model", "loss", "optim", "data", "budget", "trainer"]:
        for o in names(g):
            cases[" ".join(pre + [f"{g}={o}"])] = pre + [f"{g}={o}"]
    for v in names("variant"):
        cases[" ".join(pre + [f"+variant={v}"])] = pre + [f"+variant={v}"]
    for t in ["[]", "[ema]", "[ema,self_cond]", "[ema,label_smoothing]", "[ema,info]",
              "[spectral_norm]", "[ema,self_cond,top_k]"]:
        cases[" ".join(pre + [f"tricks={t}"])] = pre + [f"tricks={t}"]
    cases[" ".join(pre + ["tricks=[ema]", "model.conditional=true"])] = pre + ["tricks=[ema]", "model.conditional=true"]
    cases[" ".join(pre + ["model=sagan", "loss=hinge"])] = pre + ["model=sagan", "loss=hinge"]
    cases[" ".join(pre + ["model=mlp", "loss=wgan_gp"])] = pre + ["model=mlp", "loss=wgan_gp"]
    cases[" ".join(pre + ["optim=rmsprop", "loss=wgan"])] = pre + ["optim=rmsprop", "loss=wgan"]
for e in names("experiment"):
    cases[f"experiment={e}"] = [f"experiment={e}"]
    for m in names("model"):
        cases[f"experiment={e} model={m}"] = [f"experiment={e}", f"model={m}"]
    cases[f"experiment={e} loss=wgan_gp"] = [f"experiment={e}", "loss=wgan_gp"]
for h in names("hparams_search"):
    cases[f"hparams_search={h}"] = [f"hparams_search={h}"]
for s in names("study"):
    cases[f"+study={s}"] = [f"+study={s}"]
    cases[f"+study={s} +variant=self_cond_k50"] = [f"+study={s}", "+variant=self_cond_k50"]
    cases[f"+study={s} +variant=wgan_gp"] = [f"+study={s}", "+variant=wgan_gp"]
    cases[f"+study={s} +variant=info_w1"] = [f"+study={s}", "+variant=info_w1"]

out = {}
for name, ov in cases.items():
    try:
        cfg = compose_train(ov, "/tmp/confwork/run")
        hy = cfg.hydra
        keep = {k: OmegaConf.to_container(hy[k], resolve=False) for k in ("sweeper", "sweep", "launcher")}
        keep["choices"] = OmegaConf.to_container(hy.runtime.choices)
        d = {k: (OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k])
             for k in cfg if k != "hydra"}
        d["_hydra"] = keep
        d["_raw_model_conditional"] = OmegaConf.to_container(cfg, resolve=False).get("model", {}).get("conditional")
        d["_raw_optim"] = {k: v for k, v in OmegaConf.to_container(cfg, resolve=False).get("optim", {}).items() if not isinstance(v, dict)}
        out[name] = d
    except Exception as e:  # noqa
        out[name] = {"ERROR": f"{type(e).__name__}: {e}"}
    GlobalHydra.instance().clear()
Path(sys.argv[1]).write_text(json.dumps(out, indent=1, sort_keys=True, default=str))
print(len(out), "configs;", sum("ERROR" in v for v in out.values()), "errors")
