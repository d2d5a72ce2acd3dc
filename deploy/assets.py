"""Copy the front-end files the gateway serves from node_modules (npm, locked) into
``gateway/gateway/static/vendor`` (ignored by git). No CDN, nothing copied by hand."""
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / "node_modules"
VENDOR = ROOT / "gateway" / "gateway" / "static" / "vendor"

FILES = {
    "htmx.org/dist/htmx.min.js": "htmx.min.js",
    "@picocss/pico/css/pico.min.css": "pico.min.css",
    "chart.js/dist/chart.umd.min.js": "chart.umd.min.js",
    "swagger-ui-dist/swagger-ui.css": "swagger-ui/swagger-ui.css",
    "swagger-ui-dist/swagger-ui-bundle.js": "swagger-ui/swagger-ui-bundle.js",
    "swagger-ui-dist/swagger-ui-standalone-preset.js": "swagger-ui/swagger-ui-standalone-preset.js",
}


def main() -> None:
    for source, target in FILES.items():
        src, dst = NODE / source, VENDOR / target
        if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)


if __name__ == "__main__":
    main()
