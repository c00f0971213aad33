"""A synthetic bundle the size of a real kernel plugin's (bundled TypeScript with its npm dependencies, minified).

Real plugins' code cannot be shipped here, so :func:`make_bundle` writes one: a webpack-like module table of small
modules, each a mix of what minified library code holds (short-named functions and closures, classes, object and
array literals, string tables, template literals, regular expressions, arrow callbacks, switch statements), all
of which are parsed but only a few run at load time (as a bundle runs its entry module). Deterministic for a size.
"""

from __future__ import annotations

import random

__all__ = ["make_bundle"]


def _module(r: random.Random, i: int) -> str:
    n = r.randrange(3, 9)
    names = [f"{chr(97 + (i + k) % 26)}{i}_{k}" for k in range(n)]
    words = ["render", "parse", "value", "option", "state", "token", "node", "child", "error", "config", "cache"]
    parts = []
    for name in names:
        w1, w2 = r.choice(words), r.choice(words)
        kind = r.randrange(6)
        if kind == 0:
            parts.append(f"function {name}(e,t,n){{if(!e)return t;for(var r=0,o=e.length;r<o;r++){{"
                         f"if(e[r]&&e[r].{w1}===t)return n?e[r]:r}}return -1}}")
        elif kind == 1:
            parts.append(f"class {name.upper()}{{constructor(e){{this.{w1}=e||{{}};this._{w2}=[]}}"
                         f"get {w2}(){{return this._{w2}.length}}add(e){{this._{w2}.push(e);return this}}"
                         f"static of(...e){{return new {name.upper()}(e)}}}}")
        elif kind == 2:
            items = ",".join(f'"{r.choice(words)}{r.randrange(1000)}":{r.randrange(100000)}' for _ in range(8))
            nums = ",".join(str(r.randrange(999)) for _ in range(12))
            parts.append(f"const {name}=Object.freeze({{{items},list:[{nums}]}})")
        elif kind == 3:
            parts.append(f"const {name}=(e,t={{}})=>e.map(n=>`${{n.{w1}}}:${{t.{w2}||\"{w1}-{w2}\"}}`)"
                         f".filter(Boolean).join(\",\")")
        elif kind == 4:
            parts.append(f"function {name}(e){{switch(typeof e){{case\"string\":return /^[a-z]+\\d*$/i.test(e)?1:2;"
                         f"case\"number\":return e>{r.randrange(100)}?3:4;case\"object\":return e===null?5:"
                         f"Array.isArray(e)?6:7;default:return 0}}}}")
        else:
            msg = " ".join(r.choice(words) for _ in range(10))
            parts.append(f"var {name}=function(){{var e=\"{msg}\";return function(t){{try{{return e+t}}catch(n)"
                         f"{{throw new Error(\"{w1} failed: \"+n.message)}}}}}}()")
    body = ";".join(parts)
    # classes were declared under the upper-cased name
    exports = ",".join(f"{nm.upper()}:{nm.upper()}" if p.startswith("class") else f"{nm}:{nm}"
                       for nm, p in zip(names, parts, strict=True))
    return f"{i}:function(m,x,q){{\"use strict\";{body};m.exports={{{exports}}}}}"


def make_bundle(size: int, seed: int = 14) -> str:
    """About ``size`` bytes of minified-looking JavaScript; evaluating it runs the entry module, which binds one
    RPC method if ``siyuan`` exists, and sets ``globalThis.__bundle_modules`` to the module count."""
    r = random.Random(seed)
    mods = []
    total = 0
    i = 0
    while total < size:
        m = _module(r, i)
        mods.append(m)
        total += len(m) + 1
        i += 1
    table = ",".join(mods)
    return (
        "(()=>{var __m={" + table + "},__c={};function __r(i){var c=__c[i];if(c)return c.exports;"
        "var m=__c[i]={exports:{}};__m[i](m,m.exports,__r);return m.exports}"
        "var n=0;for(var k in __m)n++;globalThis.__bundle_modules=n;"
        "for(var j=0;j<20&&j<n;j++)__r(j);"
        "if(typeof siyuan!==\"undefined\")siyuan.rpc.bind(\"ping\",()=>n)})();\n"
    )
