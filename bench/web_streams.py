"""Benchmark the Streams / Blob / FormData prelude parts against web-streams-polyfill: size and eval cost per VM start.

Run ``python bench/web_streams.py --json OUT [--quick] [--polyfill PATH]``. PATH is ``dist/ponyfill.js`` of an
unpacked ``npm pack web-streams-polyfill`` (not part of the project: docs/adr/0006 explains why); without it only
the project's own parts are measured. Every figure is a median; the eval cost of the parts is given as a ratio to
the whole prelude measured in the same run.
"""

from __future__ import annotations

from pathlib import Path

from _common import arg_parser, format_table, median_time, write_json

from kplug_lab.host import js
from kplug_lab.sandbox import VM

OWN_PARTS = ("streams_core.js", "streams_readable.js", "streams_readable_ops.js", "streams_writable.js",
             "streams_writer.js", "streams_transform.js", "blob.js", "formdata.js", "text_decoder.js")
BRIDGE = ("globalThis.__kplug_native = Object.freeze({call: globalThis.__kplug_native_call,"
          " callAsync: globalThis.__kplug_native_call_async});")
# the pipeline a plugin would run: 1000 chunks through a TransformStream into a WritableStream
PIPE = """
(async () => {
  let n = 0;
  const chunks = Array.from({ length: 1000 }, (_, i) => i);
  await S.ReadableStream.from(chunks).pipeThrough(new S.TransformStream({ transform(c, k) { k.enqueue(c * 2); } }))
    .pipeTo(new S.WritableStream({ write() { n++; } }));
  globalThis.__n = n;
})();
"""


def _vm_with_prelude() -> VM:
    vm = VM()
    vm.register("__kplug_native_call", lambda op, *a: None)
    vm.register("__kplug_native_call_async", lambda op, *a: None, is_async=True)
    vm.eval(BRIDGE, "<bridge>", want_result=False)
    return vm


def main() -> None:
    parser = arg_parser(__doc__, quick="fewer samples")
    parser.add_argument("--polyfill", type=Path, help="web-streams-polyfill's dist/ponyfill.js")
    args = parser.parse_args()
    samples = 5 if args.quick else 20
    own = "".join(js._read(name) for name in OWN_PARTS)
    prelude = js.prelude()
    metrics: dict[str, float] = {"own_parts_bytes": len(own.encode()), "prelude_bytes": len(prelude.encode())}

    def eval_prelude() -> None:
        with _vm_with_prelude() as vm:
            vm.eval(prelude, js.PRELUDE_FILENAME, want_result=False)

    def eval_own() -> None:
        with _vm_with_prelude() as vm:
            stubs = "const define = () => {}; const K = {};"
            wrapped = f'(function (G) {{"use strict"; {stubs}\n{own}\n}})(globalThis);'
            vm.eval(wrapped, "<own>", want_result=False)

    def empty_vm() -> None:
        with _vm_with_prelude():
            pass

    base = median_time(empty_vm, samples=samples)
    metrics["vm_start_ms"] = base * 1e3
    metrics["prelude_eval_ms"] = (median_time(eval_prelude, samples=samples) - base) * 1e3
    metrics["own_parts_eval_ms"] = (median_time(eval_own, samples=samples) - base) * 1e3

    def pipe(setup: str, code: str) -> float:
        def once() -> None:
            with _vm_with_prelude() as vm:
                vm.eval(setup, "<setup>", want_result=False)
                vm.eval(PIPE, "<pipe>", want_result=False)
                vm.run_jobs()
        return median_time(once, samples=samples) * 1e3 - base * 1e3

    metrics["own_pipe_1000_ms"] = pipe(prelude + "globalThis.S = globalThis;", PIPE) - metrics["prelude_eval_ms"]
    if args.polyfill is not None:
        poly = args.polyfill.read_text(encoding="utf-8")
        metrics["polyfill_bytes"] = len(poly.encode())

        def eval_poly() -> None:
            with _vm_with_prelude() as vm:
                vm.eval(poly, "<ponyfill>", want_result=False)

        metrics["polyfill_eval_ms"] = (median_time(eval_poly, samples=samples) - base) * 1e3
        metrics["polyfill_pipe_1000_ms"] = pipe(poly + ";globalThis.S = globalThis.WebStreamsPolyfill;", PIPE) - \
            metrics["polyfill_eval_ms"]
    rows = [["metric", "value"]] + [[k, f"{v:.2f}" if isinstance(v, float) else str(v)] for k, v in metrics.items()]
    print(format_table(rows, right=[1]))
    write_json(args.json, {"metrics": metrics})


if __name__ == "__main__":
    main()
