// The portability report (host/ops/portability.py): kplug_lab's own globals, absent in SiYuan (changes §1, §5).
// After kernel.js's globals are built, each becomes an accessor that reports its first use to the host; in
// SiYuan-strict mode they are removed instead, so that "runs in the workbench" means "runs in SiYuan". The
// prelude's own uses go through the bindings it captured (core.js), never through these globals.
const KPLUG_ONLY_GLOBALS = ["structuredClone", "atob", "btoa", "queueMicrotask", "performance", "DOMException",
                            "Event", "EventTarget", "global", "kplug"];
const touched = new Set();
function touch(name) {
  if (touched.has(name)) return;
  touched.add(name);
  call("portability_touch", name);
}
function applyPortability(strict) {
  for (const name of KPLUG_ONLY_GLOBALS) {
    const desc = Object.getOwnPropertyDescriptor(G, name);
    if (!desc || !desc.configurable) continue;
    if (strict) { delete G[name]; continue; }
    let value = "value" in desc ? desc.value : desc.get.call(G);
    Object.defineProperty(G, name, {
      get() { touch(name); return value; },
      set(v) { touch(name); value = v; },
      configurable: true,
      enumerable: desc.enumerable,
    });
  }
}
