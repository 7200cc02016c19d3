"""``montecarlo``: simulated price paths, the full cascade on each, and the loss
distribution (docs/MONTECARLO.md)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from crossmargin.cli.common import (
    BookArg,
    DeleverageOpt,
    FeeOpt,
    InsuranceFundOpt,
    JsonOpt,
    OutOpt,
    OverwriteOpt,
    PartialOpt,
    QuietOpt,
    Run,
    ThreadsOpt,
    UniverseOpt,
    cascade_config,
    one_line,
    pairs,
    universe_of,
    write,
)
from crossmargin.cli.outdir import save_summary, sha256, start
from crossmargin.exceptions import ConfigError


def montecarlo(
    book: BookArg,
    universe: UniverseOpt = None,
    out: OutOpt = Path("crossmargin-out"),
    paths: Annotated[int, typer.Option("--paths", min=1, help="Number of paths.")] = 1000,
    horizon: Annotated[str, typer.Option(help="Horizon: 1d, 24h, 7d, 1w...")] = "1d",
    steps: Annotated[int, typer.Option(min=1, help="Monitored steps over the horizon.")] = 24,
    model: Annotated[
        str, typer.Option(help="normal, t, garch-t, jump, bootstrap or fhs.")
    ] = "normal",
    returns: Annotated[
        Path | None,
        typer.Option(
            help="Returns table (Parquet/CSV; one column per underlying, optional timestamp): "
            "the rows for bootstrap / fhs, the volatilities and correlations for the others."
        ),
    ] = None,
    frequency: Annotated[
        str | None, typer.Option(help="Period of the --returns rows when it has no timestamp.")
    ] = None,
    vol: Annotated[
        list[str] | None,
        typer.Option("--vol", help="Annualised volatility SYMBOL=VOL (repeatable)."),
    ] = None,
    corr: Annotated[
        list[str] | None,
        typer.Option("--corr", help="Correlation A/B=RHO (repeatable; pairs not given: 0)."),
    ] = None,
    df: Annotated[float, typer.Option(help="Degrees of freedom (t, garch-t).")] = 4.0,
    load_paths: Annotated[
        Path | None,
        typer.Option(help="Use a saved path set (.parquet/.npz) instead of simulating."),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the paths.")] = 0,
    insurance_fund: InsuranceFundOpt = 0.0,
    fee: FeeOpt = 0.005,
    partial: PartialOpt = 0.2,
    deleverage: DeleverageOpt = "adl",
    max_rounds: Annotated[int, typer.Option(help="Round limit of each step.")] = 100,
    no_screen: Annotated[
        bool, typer.Option("--no-screen", help="Run the cascade on every path.")
    ] = False,
    threads: ThreadsOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Monte Carlo cascades (docs/MONTECARLO.md): simulated price paths, the full cascade on
    each, and the loss distribution — VaR / ES, P(fund exhausted), fund size, Cover-1/2.
    Writes montecarlo_paths.parquet (the paths), montecarlo.parquet (one row per path),
    montecarlo_risk.parquet, montecarlo_fund.parquet and montecarlo_markets.parquet."""
    import warnings

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from crossmargin import montecarlo as mc
    from crossmargin.engine import Engine

    run = Run(quiet, as_json)
    u = universe_of(universe)
    if model not in mc.MODEL_NAMES:
        raise ConfigError(
            f"--model: {model!r} is not one of {', '.join(mc.MODEL_NAMES)}", field="--model"
        )
    cfg = cascade_config(
        insurance_fund=insurance_fund,
        fee=fee,
        partial=partial,
        deleverage=deleverage,
        max_rounds=max_rounds,
    )
    inputs: dict[str, Any] = {
        "model": model,
        "paths": paths,
        "horizon": horizon,
        "steps": steps,
        "seed": seed,
    }
    if returns is not None:
        inputs["returns"] = {"path": str(returns.resolve()), "sha256": sha256(returns)}
    if load_paths is not None:
        inputs["load_paths"] = {"path": str(load_paths.resolve()), "sha256": sha256(load_paths)}
    prov = start("montecarlo", out, overwrite, universe, book, **inputs)
    if load_paths is not None:
        with run.step(f"reading {load_paths}"):
            ps = mc.PathSet.load(load_paths)
    else:
        if model in ("bootstrap", "fhs"):
            if returns is None:
                raise ConfigError(f"--model {model} needs --returns FILE", field="--returns")
            spec: Any = mc.MODEL_NAMES[model](str(returns), frequency=frequency)
        else:
            if vol:
                sig = pairs(vol, "--vol", "volatility")
                names = list(sig)
                rho: Any = {k: v for k, v in pairs(corr, "--corr", "correlation").items()}
            elif returns is not None:
                sig, rho = mc.calibrate(str(returns), frequency)
                names = list(sig)
            else:
                raise ConfigError(
                    f"--model {model}: give --vol SYMBOL=VOL (repeatable) or --returns FILE",
                    field="--vol",
                )
            extra = {"df": df} if model in ("t", "garch-t") else {}
            spec = mc.MODEL_NAMES[model]({n: sig[n] for n in names}, rho or None, **extra)
        with run.step(f"simulating {paths:,} paths × {steps} steps ({model})"):
            ps = mc.simulate(spec, n_paths=paths, horizon=horizon, steps=steps, seed=seed)
    b = run.read(book)
    engine = Engine(u, threads=threads)
    show = not (quiet or as_json)
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=run.err,
        disable=not show,
    )
    tasks: dict[str, Any] = {}
    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        if as_json:
            now = time.perf_counter()
            if done == total or now - last[0] > 2.0:
                last[0] = now
                print(json.dumps({"step": stage, "done": done, "total": total}), file=sys.stderr)
            return
        if stage not in tasks:
            tasks[stage] = bar.add_task(f"{stage} ({len(ps):,} paths)", total=total)
        bar.update(tasks[stage], completed=done)

    t0 = time.perf_counter()
    with bar, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = mc.run(engine, b, ps, cfg, screen=not no_screen, threads=threads, progress=progress)
        s = r.summary()
        risk, fund = r.risk_table(), r.fund_size_curve()
        markets = r.tail_attribution(0.99)
    run.note(f"montecarlo: {time.perf_counter() - t0:.2f} s")
    tail = [w for w in caught if issubclass(w.category, mc.TailWarning)]
    notes = sorted({one_line(w.message) for w in caught if w not in tail})
    notes += [one_line(w.message) for w in tail if str(w.message).startswith("summary:")]
    if tail and not any(str(w.message).startswith("summary:") for w in tail):
        notes.append(
            f"{len(tail)} quantile estimate(s) rest on fewer than {mc.stats.MIN_TAIL} tail "
            "paths (see montecarlo_risk.parquet / montecarlo_fund.parquet tail_paths)"
        )
    for n in notes:
        run.note(f"warning: {n}")
    with run.step(f"writing {out}"):
        out.mkdir(parents=True, exist_ok=True)
        ps.save(out / "montecarlo_paths.parquet")
        write(r.paths, out / "montecarlo.parquet")
        write(risk, out / "montecarlo_risk.parquet")
        write(fund, out / "montecarlo_fund.parquet")
        write(markets, out / "montecarlo_markets.parquet")
        s["warnings"] = notes
        s["paths_model"] = ps.meta.get("model")
        save_summary(out, prov, montecarlo=s)
    run.finish({k: v for k, v in s.items() if not isinstance(v, list | dict)}, "montecarlo")
