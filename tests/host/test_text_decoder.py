"""TextDecoder as SiYuan's host has it (changes page §1): UTF-8, UTF-16LE/BE and their labels, ``fatal``,
``ignoreBOM`` and ``decode(…, {stream: true})``, in a real plugin VM.

Conformance: cases ported (assertions, not files) from the web-platform-tests ``encoding/``:
textdecoder-labels, textdecoder-utf16-surrogates, textdecoder-fatal, textdecoder-fatal-streaming,
textdecoder-byte-order-marks, textdecoder-ignorebom, textdecoder-streaming.
"""

from __future__ import annotations

from kplug_testing import Host
from siyuan_probe import run, started


async def test_labels_name_the_three_encodings_and_others_are_a_range_error(host: Host) -> None:
    await started(host)
    got = await run(host, """
      const enc = (l) => { try { return new TextDecoder(l).encoding; } catch (e) { return e.name; } };
      return ["utf8", " UTF-8\\n", "unicode-1-1-utf-8", "utf-16", "UTF-16LE", "ucs-2", "unicode", "csunicode",
              "unicodefeff", "iso-10646-ucs-2", "utf-16be", "unicodefffe", "latin1", "utf-32", ""].map(enc);
    """)
    assert got == ["utf-8", "utf-8", "utf-8", "utf-16le", "utf-16le", "utf-16le", "utf-16le", "utf-16le",
                   "utf-16le", "utf-16le", "utf-16be", "utf-16be", "RangeError", "RangeError", "RangeError"]


async def test_utf16_decodes_both_byte_orders_and_replaces_bad_surrogates(host: Host) -> None:
    await started(host)
    got = await run(host, """
      const d = (enc, bytes) => new TextDecoder(enc).decode(new Uint8Array(bytes));
      return {
        le: d("utf-16le", [0x61, 0, 0x3d, 0xd8, 0x00, 0xde, 0xe9, 0]),
        be: d("utf-16be", [0, 0x61, 0xd8, 0x3d, 0xde, 0x00, 0, 0xe9]),
        loneLead: d("utf-16le", [0x00, 0xd8]),
        loneTrail: d("utf-16le", [0x00, 0xdc]),
        unmatchedLead: d("utf-16le", [0x00, 0xd8, 0x00, 0x00]),
        unmatchedTrail: d("utf-16le", [0x00, 0xdc, 0x00, 0x00]),
        swapped: d("utf-16le", [0x00, 0xdc, 0x00, 0xd8]),
        oddByte: d("utf-16le", [0x61, 0x00, 0x62]),
      };
    """)
    assert got["le"] == got["be"] == "a\U0001F600é"
    assert got["loneLead"] == got["loneTrail"] == "\ufffd"
    assert got["unmatchedLead"] == got["unmatchedTrail"] == "\ufffd\x00"
    assert got["swapped"] == "\ufffd\ufffd"
    assert got["oddByte"] == "a\ufffd"


async def test_fatal_throws_type_error_on_invalid_input_and_replacement_otherwise(host: Host) -> None:
    await started(host)
    got = await run(host, """
      const bad = [["utf-8", [0xff]], ["utf-8", [0xc0]], ["utf-8", [0xe0]], ["utf-8", [0xf0, 0x80, 0x80]],
                   ["utf-8", [0xed, 0xa0, 0x80]], ["utf-8", [0xc0, 0x80]], ["utf-8", [0xf4, 0x90, 0x80, 0x80]],
                   ["utf-16le", [0x00]], ["utf-16le", [0x00, 0xd8]], ["utf-16be", [0xdc, 0x00]]];
      return {
        fatal: bad.map(([enc, b]) => { try { new TextDecoder(enc, { fatal: true }).decode(new Uint8Array(b));
          return "no error"; }
                                       catch (e) { return e instanceof TypeError; } }),
        flags: [new TextDecoder("utf-8", { fatal: true }).fatal, new TextDecoder().fatal,
                new TextDecoder("utf-8", { ignoreBOM: true }).ignoreBOM],
        replaced: new TextDecoder().decode(new Uint8Array([0x61, 0xe0, 0x80, 0x80, 0x62, 0xf0, 0x9f, 0x98])),
      };
    """)
    assert got["fatal"] == [True] * 10
    assert got["flags"] == [True, False, True]
    # the standard's decoder: E0 80 80 is three errors (80 is outside E0's second-byte range); a cut F0 9F 98 is one
    assert got["replaced"] == "a\ufffd\ufffd\ufffdb\ufffd"


async def test_byte_order_marks_are_stripped_only_when_they_match_unless_ignore_bom(host: Host) -> None:
    await started(host)
    got = await run(host, """
      const utf8 = [0xef, 0xbb, 0xbf, 0x7a], le = [0xff, 0xfe, 0x7a, 0x00], be = [0xfe, 0xff, 0x00, 0x7a];
      const d = (enc, b, opts) => new TextDecoder(enc, opts).decode(new Uint8Array(b));
      const twice = new TextDecoder("utf-16le");
      return {
        stripped: [d("utf-8", utf8), d("utf-16le", le), d("utf-16be", be)],
        kept: [d("utf-8", utf8, { ignoreBOM: true }), d("utf-16le", le, { ignoreBOM: true })],
        mismatched: [d("utf-16le", be), d("utf-16be", le), d("utf-8", le)],
        secondCall: [twice.decode(new Uint8Array(le)), twice.decode(new Uint8Array(le))],
      };
    """)
    assert got["stripped"] == ["z", "z", "z"]
    assert got["kept"] == ["\ufeffz", "\ufeffz"]
    assert got["mismatched"] == ["\ufffe\u7a00", "\ufffe\u7a00", "\ufffd\ufffdz\x00"]
    assert got["secondCall"] == ["z", "z"]  # a decode without {stream} starts over: its BOM is stripped again


async def test_stream_option_keeps_sequences_split_across_chunks(host: Host) -> None:
    await started(host)
    got = await run(host, """
      const text = "A\\u00e9\\u20ac\\ud83d\\ude00\\u0000z";
      const encode = {
        "utf-8": (s) => new TextEncoder().encode(s),
        "utf-16le": (s) => { const b = []; for (let i = 0; i < s.length; i++) { const c = s.charCodeAt(i);
          b.push(c & 255, c >> 8); } return new Uint8Array(b); },
        "utf-16be": (s) => { const b = []; for (let i = 0; i < s.length; i++) { const c = s.charCodeAt(i);
          b.push(c >> 8, c & 255); } return new Uint8Array(b); },
      };
      const out = {};
      for (const enc of Object.keys(encode)) {
        const bytes = encode[enc](text);
        out[enc] = [1, 2, 3, 4, 5].map((size) => {
          const d = new TextDecoder(enc);
          let s = "";
          for (let i = 0; i < bytes.length; i += size) s += d.decode(bytes.subarray(i, i + size), { stream: true });
          return s + d.decode();
        }).every((s) => s === text);
      }
      const f = new TextDecoder("utf-16le", { fatal: true });
      const odd = new Uint8Array([0x00]), even = new Uint8Array([0x00, 0x00]);
      out.fatalStreaming = [f.decode(odd, { stream: true }), f.decode(odd)];
      try { f.decode(even, { stream: true }); f.decode(odd); out.fatalStreaming.push("no error");
        } catch (e) { out.fatalStreaming.push(e.name); }
      out.fatalStreaming.push(f.decode(even, { stream: true }), f.decode(even));
      const u = new TextDecoder();
      out.flushError = [u.decode(new Uint8Array([0xe2, 0x82]), { stream: true }), u.decode()];
      return out;
    """)
    assert got["utf-8"] and got["utf-16le"] and got["utf-16be"]
    assert got["fatalStreaming"] == ["", "\x00", "TypeError", "\x00", "\x00"]
    assert got["flushError"] == ["", "\ufffd"]
