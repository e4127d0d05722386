"""The technique table of docs/digits/notes.md: each technique's final FID (n = 10,000) against the
old default's (recipe=unconditional, 5 seeds), Welch's t (paired where the same checkpoints are
re-sampled), Holm over all comparisons; precision, coverage and rarest class as seed means.
    python tools/digits_table.py outputs
Reads <root>/digits5 (both recipes, 5 seeds), <root>/digits5_drs (DRS on those checkpoints),
<root>/digits_k100, <root>/digits_screen and <root>/digits_screen_posthoc (the first screen)."""

from __future__ import annotations

import json
import statistics as st
import sys
from pathlib import Path

from gan.io.artefacts import run_verdict
from gan.sweeps.stats import holm, paired, t_interval, welch


def seeds(ms: list[dict]) -> str:
    return " / ".join(f"{r['fid']:.1f}" for r in ms)


def truncated(suffix: str, root: Path, kind: str = "truncation") -> list[dict]:
    """gan.evaluate of the k = 20 screen's seeds 0, 1, 2 with a post-hoc sampler."""
    names = ["variant_self_cond", "variant_self_cond_seed_1", "variant_self_cond_seed_2"]
    return [m for n in names
            for m in runs(f"digits_screen_posthoc/{n}-sampler_{kind}{suffix}/metrics.json", root)]


def runs(pattern: str, root: Path) -> list[dict]:
    """Each run's final metrics, and `diverged`: whether the run's status.json says it
    diverged or failed (the guard's verdict: FID over guard.max_fid, or too few classes)."""
    out = []
    for p in sorted(root.glob(pattern)):
        # the first screen's files predate metrics.json schema 2 (keys "val/fid", ...)
        stored = json.loads(p.read_text())["metrics"]
        metrics = {k.removeprefix("val/"): v for k, v in stored.items()}
        # the one rule the sweep index and gan.report share for how a run ended
        out.append({**metrics, "diverged": run_verdict(p.parent) in ("diverged", "failed",
                                                                     "unreadable")})
    return out


def main(root: Path) -> None:
    base = runs("digits5/variant=baseline,seed=*/metrics.json", root)
    k20 = runs("digits_screen/variant=self_cond,*/metrics.json", root)
    rows = [  # label, seeds' metrics, paired with (the same checkpoints, plain sampling)
        ("`self_cond_k50` (the new default)",
         runs("digits5/variant=self_cond_k50,*/metrics.json", root), None),
        ("`self_cond` (k = 20)", k20, None),
        ("`self_cond_k50`, k = 100", runs("digits_k100/variant=*/metrics.json", root), None),
        ("`self_cond_minibatch_std`",
         runs("digits_screen/variant=self_cond_minibatch_std,*/metrics.json", root), None),
        ("`top_k`", runs("digits_screen/variant=top_k,*/metrics.json", root), None),
        ("`minibatch_std`", runs("digits_screen/variant=minibatch_std,*/metrics.json", root), None),
        ("`mog` (DeLiGAN mixture prior, 50 components)",
         runs("digits_screen/variant=mog,*/metrics.json", root), None),
        ("`self_cond_mog` (the new default + the mixture prior)",
         runs("digits_screen/variant=self_cond_mog,*/metrics.json", root), None),
        ("`info_w01` (InfoGAN, λ 0.1)", runs("digits_screen/variant=info_w01,*/metrics.json", root),
         None),
        ("`info_w03` (InfoGAN, λ 0.3)", runs("digits_screen/variant=info_w03,*/metrics.json", root),
         None),
        ("`info_w1` (InfoGAN, λ 1)", runs("digits_screen/variant=info_w1,*/metrics.json", root),
         None),
        ("old default + DRS", runs("digits5_drs/variant=baseline,*/metrics.json", root), base),
        ("`self_cond_k50` + DRS (vs its plain sampling)",
         runs("digits5_drs/variant=self_cond_k50,*/metrics.json", root),
         runs("digits5/variant=self_cond_k50,*/metrics.json", root)),
        ("`self_cond` + truncation ψ 0.7 (vs its plain sampling)", truncated("", root), k20),
        ("`self_cond` + truncation ψ 0.85 (vs its plain sampling)",
         truncated("_sampler.psi_0.85", root), k20),
        ("`self_cond` + DRS (vs its plain sampling)", truncated("", root, "drs"), k20),
    ]
    rows = [row for row in rows if row[1]]  # techniques not (yet) run on this machine
    tests = [paired([r["fid"] for r in ms], [r["fid"] for r in ref]) if ref else
             welch([r["fid"] for r in ms], [r["fid"] for r in base]) for _, ms, ref in rows]
    adjusted = holm([t.p for t in tests])
    print("| technique | seeds | FID mean [95 % t] | FID per seed | Δ FID [95 %] | test | Holm p "
          "| verdict |"
          " precision | coverage | rarest class |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")

    def fmt(ms: list[dict], key: str) -> str:
        return f"{st.mean(r[key] for r in ms):.2f}"

    def fid(ms: list[dict]) -> str:
        values = [r["fid"] for r in ms]
        if len(values) < 2:
            return f"{values[0]:.1f}"
        mean, half = t_interval(values)
        return f"{mean:.1f} [{mean - half:.1f}, {mean + half:.1f}]"

    print(f"| old default (`recipe=unconditional`) | {len(base)} | {fid(base)} | "
          f"{seeds(base)} | – | – | – | baseline | "
          f"{fmt(base, 'precision')} | {fmt(base, 'coverage')} | "
          f"{100 * st.mean(r['min_class_share'] for r in base):.1f} % |")
    for (label, ms, _), t, p in zip(rows, tests, adjusted):
        failed = sum(r["diverged"] for r in ms)
        # as gan.report ranks: the success rate first (a diverged seed is the worst outcome;
        # no baseline seed diverged), the FID test only between techniques that never fail
        verdict = (f"fails: {failed} of {len(ms)} seeds diverged" if failed else
                   "can't tell (1 seed: no test)" if len(ms) < 2 else
                   "better" if p < 0.05 and t.diff < 0 else "worse" if p < 0.05 else "can't tell")
        delta = (f"{t.diff:+.1f} [{t.low:+.1f}, {t.high:+.1f}] | {t.test} | {p:.2g}"
                 if len(ms) > 1 else "– | – | –")
        print(f"| {label} | {len(ms)} | {fid(ms)} | {seeds(ms)} | {delta} | {verdict} | "
              f"{fmt(ms, 'precision')} | {fmt(ms, 'coverage')} | "
              f"{100 * st.mean(r['min_class_share'] for r in ms):.1f} % |")


    # A run that failed or diverged writes no metrics.json: name every such folder, so a
    # technique's failures are counted, not dropped.
    missing = [p.relative_to(root) for sweep in ("digits5", "digits_screen", "digits_k100")
               for p in sorted((root / sweep).glob("variant=*"))
               if not (p / "metrics.json").is_file()]
    print(f"\nRun folders without metrics.json (failed, diverged or still running): "
          f"{', '.join(map(str, missing)) or 'none'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "outputs"))
