"""The page `dvc plots show` writes, drawn offline.

DVC's own page loads Vega, Vega-Lite and Vega-Embed from a CDN (dvc_render's ``VegaRenderer.SCRIPTS``), so
its interactive plots are blank on a machine without the internet (a cluster node, an air-gapped lab).
:func:`write_plots_template` writes an HTML template with the three libraries inlined, bundled by
vl-convert-python (the Vega project's own bundler, from PyPI; no network at run time), and without DVC's
``{scripts}`` placeholder, so the CDN tags never enter the page. ``.dvc/config`` names it
(``plots.html_template``, relative to ``.dvc/``); ``make setup`` writes it there (``faceres plots-template``).
"""

from __future__ import annotations

import re
from pathlib import Path

from faceres.core.errors import FaceresError
from faceres.core.files import atomic_write

# where .dvc/config's plots.html_template points (relative to the repository root)
PLOTS_TEMPLATE = Path(".dvc") / "plots" / "offline.html"
# dvc_render's placeholders: the template keeps {plot_divs} and {refresh_tag}, and drops {scripts} (the CDN)
PLACEHOLDERS = ("{plot_divs}", "{refresh_tag}", "{scripts}")
# DVC writes Vega-Lite v5 specs ($schema .../vega-lite/v5.json): bundle the newest 5.x vl-convert ships
VEGA_LITE_MAJOR = "5."

_PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- Vega {vega}, Vega-Lite {vega_lite}, Vega-Embed {embed}, inlined (vl-convert-python {vl_convert}):
         no network needed. Written by `faceres plots-template`. -->
    <script>{bundle}</script>
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def plots_template() -> str:
    """The template's text: DVC's default page with the Vega libraries inlined instead of linked."""
    from importlib.metadata import version

    import vl_convert

    vega_lite = max((v for v in vl_convert.get_vegalite_versions() if v.startswith(VEGA_LITE_MAJOR)),
                    key=lambda v: tuple(int(part) for part in v.split(".")))
    bundle = vl_convert.javascript_bundle(vl_version=vega_lite)
    # inlined, the bundle must neither end its <script> element nor hold a placeholder DVC would replace
    clashes = [p for p in PLACEHOLDERS if p in bundle] + (["</script"] if re.search(r"</script", bundle, re.I) else [])
    if clashes:
        raise FaceresError(f"vl-convert-python {version('vl-convert-python')}'s bundle contains {', '.join(clashes)}: "
                           "it cannot be inlined into the plots template")
    page = _PAGE
    fields = {"vega": vl_convert.get_vega_version(), "vega_lite": vega_lite,
              "embed": vl_convert.get_vega_embed_version(), "vl_convert": version("vl-convert-python")}
    for name, value in fields.items():
        page = page.replace("{" + name + "}", value)
    return page.replace("{bundle}", bundle)  # last: nothing is replaced inside the bundle


def write_plots_template(path: str | Path = PLOTS_TEMPLATE) -> Path:
    path = Path(path)
    with atomic_write(path) as handle:
        handle.write(plots_template().encode("utf-8"))
    return path
