#!/bin/sh
# Builds {file}.wasm with componentize-py 0.25.1 (pip install componentize-py==0.25.1).
set -e
cd "$(dirname "$0")"
exec componentize-py -d "{sdk}/python/wit" -w handler componentize -p "{sdk}/python" -p . app -o {file}.wasm
