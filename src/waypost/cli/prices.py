"""``waypost prices``: the prices that apply to a model and where they come from. Works offline,
on the config file and the catalogue bundled with Waypost (models created in the database are
not seen: their prices are in ``waypost models show``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from waypost.cli.configuration import ConfigOption, load_config
from waypost.cli.output import JsonOption, fields, print_json, table
from waypost.core.errors import GatewayError
from waypost.metering.pricing import COMPONENTS, SCALE, CatalogueEntry, PriceBook, Quote
from waypost.routing.registry import ModelRegistry
from waypost.settings import Prices

app = typer.Typer(
    help="Show model prices (USD per million tokens) and where they come from.", no_args_is_help=True
)

ProviderFilter = typer.Option(None, "--provider", "-p", help="Only this provider (type or preset name).")
ModelFilter = typer.Option(None, "--model", "-m", help="Only models whose name contains this.")
PRICE_FIELDS = ("input", "output", "cache_read", "cache_write", "cache_write_1h")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _tiers(prices: Prices) -> str:
    return "; ".join(
        f">{t.above_input_tokens:,}: "
        + ", ".join(f"{k} {_num(getattr(t, k))}" for k in PRICE_FIELDS if getattr(t, k) is not None)
        for t in prices.tiers
    )


def _prices_json(prices: Prices) -> dict[str, Any]:
    return prices.model_dump(exclude_none=True)


def _entry_json(entry: CatalogueEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"provider": entry.provider, "model": entry.model}
    if entry.aliases:
        out["aliases"] = list(entry.aliases)
    out["prices"] = _prices_json(entry.prices)
    out["source"] = entry.source
    if entry.note:
        out["note"] = entry.note
    return out


@app.command("list")
def list_prices(
    provider: str | None = ProviderFilter,
    model: str | None = ModelFilter,
    config: Path | None = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """List the bundled catalogue's prices (and the configured models' own)."""
    settings = load_config(config)
    book = PriceBook.from_settings(settings)
    catalogue = book.catalogue
    rows: list[dict[str, Any]] = []
    for m in settings.models:
        quote = book.quote(m, m.upstream_model or m.name)
        if quote is None or not quote.source.startswith(("model config", "preset")):
            continue  # catalogue prices are listed below; unpriced ones have no row
        rows.append(
            {
                "provider": m.preset or m.provider,
                "model": m.name,
                "prices": _prices_json(quote.prices),
                "source": quote.source,
            }
        )
    rows += [_entry_json(e) for e in catalogue.entries]
    wanted = catalogue.same_prices_as.get(provider, provider) if provider else None
    if wanted is not None:
        rows = [r for r in rows if r["provider"] in (provider, wanted)]
    if model:
        needle = model.lower()
        rows = [
            r for r in rows if needle in r["model"].lower() or any(needle in a for a in r.get("aliases", ()))
        ]
    if as_json:
        print_json({"date": catalogue.date.isoformat(), "seeded_from": catalogue.seeded_from, "data": rows})
        return
    typer.echo(f"USD per million tokens; bundled catalogue of {catalogue.date.isoformat()}.")
    columns = [
        ("provider", lambda r: str(r["provider"])),
        ("model", lambda r: str(r["model"])),
        *[(k.replace("_", " "), _price_cell(k)) for k in PRICE_FIELDS],
        ("tiers", lambda r: _tiers(Prices.model_validate(r["prices"])) or "-"),
        ("from", lambda r: "catalogue" if r["source"].startswith("http") else r["source"]),
    ]
    table(rows, columns, empty="No prices match.")


def _price_cell(key: str) -> Any:
    def cell(row: dict[str, Any]) -> str:
        return _num(row["prices"].get(key))

    return cell


@app.command("show")
def show_price(
    name: str = typer.Argument(..., help="A configured model's name, or any model name in the catalogue."),
    provider: str | None = ProviderFilter,
    config: Path | None = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Show the prices that apply to a model, and where they come from."""
    settings = load_config(config)
    book = PriceBook.from_settings(settings)
    try:
        dep = ModelRegistry(settings.models, environ={}).resolve(name)
    except GatewayError:
        dep = None
    if dep is not None and (provider is None or provider in (dep.settings.preset, dep.provider)):
        quote = book.quote(dep.settings, dep.upstream_model)
        markup_key = dep.settings.preset or dep.provider
        answer: dict[str, Any] = {
            "model": dep.name,
            "provider": markup_key,
            "upstream_model": dep.upstream_model,
        }
        if quote is None:
            answer["source"] = None
            answer["unpriced"] = settings.metering.unpriced
        else:
            answer["source"] = quote.source
            answer["prices"] = _prices_json(quote.prices)
            answer["markup_percent"] = book.markup_for(quote, dep.provider)
            entry = book.catalogue_entry(dep.settings, dep.upstream_model)
            if quote.source.startswith("catalogue") and entry is not None and entry.note:
                answer["note"] = entry.note
        _show(answer, as_json)
        return
    found = book.catalogue.find(name, provider)
    if not found:
        where = f" for provider {provider}" if provider else ""
        typer.echo(
            f"error: no price for {name!r}{where}: it is not a configured model and not in the "
            f"bundled catalogue (set `prices:` on the model)",
            err=True,
        )
        raise typer.Exit(1)
    answers = []
    for entry in found:
        answer = {"model": entry.model, "provider": entry.provider, **_entry_json(entry)}
        answer["source"] = entry.quote.source
        answers.append(answer)
    if as_json:
        print_json({"data": answers})
        return
    for i, answer in enumerate(answers):
        if i:
            typer.echo("")
        _show(answer, False)


def _show(answer: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(answer)
        return
    pairs = [("model", str(answer["model"])), ("provider", str(answer["provider"]))]
    if answer.get("upstream_model") and answer["upstream_model"] != answer["model"]:
        pairs.append(("upstream model", str(answer["upstream_model"])))
    if answer.get("aliases"):
        pairs.append(("aliases", ", ".join(answer["aliases"])))
    if answer.get("source") is None:
        rule = answer.get("unpriced", "allow")
        what = {"allow": "served at cost 0, flagged unpriced", "block": "refused (400)"}.get(rule, rule)
        pairs.append(("prices", f"none anywhere (metering.unpriced: {rule}: {what})"))
        fields(pairs)
        return
    pairs.append(("from", str(answer["source"])))
    prices = Prices.model_validate(answer["prices"])
    base = Quote(prices, "")
    for key in PRICE_FIELDS:
        value = getattr(prices, key)
        if value is not None:
            shown = f"{_num(value)} USD / 1M tokens"
        else:
            shown = f"{_num(_effective(base, key))} USD / 1M tokens (unset: as {_FALLS_BACK[key]})"
        pairs.append((key.replace("_", " "), shown))
    if prices.tiers:
        pairs.append(("tiers", _tiers(prices)))
    if answer.get("markup_percent"):
        pairs.append(("markup", f"{answer['markup_percent']:+g} %"))
    if answer.get("note"):
        pairs.append(("note", str(answer["note"])))
    fields(pairs)


_FALLS_BACK = {"cache_read": "input", "cache_write": "input", "cache_write_1h": "cache write"}


def _effective(quote: Quote, key: str) -> float:
    """The price charged for ``key`` when unset (cache prices fall back, see pricing.py)."""
    return quote.rates_for(0)[COMPONENTS.index(key)] / SCALE
