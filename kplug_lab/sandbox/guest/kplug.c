/*
 * kplug guest: the project's C shim over QuickJS-NG, compiled to wasm32-wasi.
 *
 * One wasm instance holds one QuickJS runtime and context. The host (Python, kplug_lab.sandbox) drives it
 * through a handful of exports, and the guest reaches the host through ONE import, kplug.host_call.
 *
 * Protocol, in short (kplug_lab/sandbox/_vm.py is the other half):
 *   - Inputs are written by the host into a scratch buffer (kp_buf) as NUL-terminated text.
 *   - Every export that produces a value leaves it in OUT {ptr, len, kind}: JSON text (or nothing, for
 *     `undefined`); the host reads it straight from linear memory. One crossing per operation.
 *   - Status codes: KP_OK, KP_EXCEPTION (OUT = JSON {name, message, stack, value?}), KP_INTERRUPTED (CPU
 *     deadline), KP_OOM (memory limit), KP_PENDING (the call returned a Promise; its outcome arrives later
 *     through host_call(KP_OP_SETTLED_*)).
 *   - The CPU deadline is a flag in linear memory that a host watchdog thread sets; QuickJS's interrupt
 *     handler reads it, so checking the deadline costs no crossing.
 *
 * quickjs.c is included rather than linked so the shim can reseed Math.random from the host's entropy.
 */
static int kp_oom_hits; /* counted by the one-line patch build.py applies to JS_ThrowOutOfMemory */
#include "quickjs.c"

#define KP_OK 0
#define KP_EXCEPTION 1
#define KP_INTERRUPTED 2
#define KP_OOM 3
#define KP_PENDING 4
#define KP_ERROR 5

#define KP_KIND_JSON 0
#define KP_KIND_UNDEFINED 1
#define KP_KIND_BYTES 2 /* raw bytes (compiled bytecode), not JSON */

/* host_call's answer: n >= 0, a JSON result of n bytes in scratch; -n - 1 bytes of a JSON error message
 * (the host call failed, or its result could not be written into this VM); KP_HOST_NO_ROOM: failed, and not
 * even a message fitted. */
#define KP_HOST_NO_ROOM INT32_MIN

/* host_call "function ids" below zero are notifications from the guest, not host functions. */
#define KP_OP_SETTLED_OK -1
#define KP_OP_SETTLED_ERR -2
#define KP_OP_UNHANDLED_REJECTION -3
#define KP_OP_REJECTION_HANDLED -4

__attribute__((import_module("kplug"), import_name("host_call")))
extern int32_t kp_host_call(int32_t fn_id, const char *ptr, int32_t len, int32_t token);

struct kp_out {
    uint32_t ptr;
    uint32_t len;
    uint32_t kind;
    uint32_t scratch_ptr;
    uint32_t scratch_cap;
};

static JSRuntime *rt;
static JSContext *ctx;
static struct kp_out OUT;
static char *scratch;
static uint32_t scratch_cap;
static volatile int32_t interrupt_flag;
static int interrupted;
static const char *last_cstr;
static char *last_owned;
static uint8_t *last_js; /* OUT bytes allocated by QuickJS (js_free) */
/* The script kp_compile compiled last, until kp_run_compiled runs it (or the next compile drops it). */
static JSValue compiled = JS_UNDEFINED;

/* Resolving functions of promises handed out by async host functions, indexed by promise id. */
static JSValue *pending_funcs;
static uint32_t pending_cap;
static uint32_t next_pending = 1;
static uint32_t free_pending_head;

static JSClassID settle_class_id;

static void release_last(void)
{
    if (last_cstr) {
        JS_FreeCString(ctx, last_cstr);
        last_cstr = NULL;
    }
    if (last_owned) {
        free(last_owned);
        last_owned = NULL;
    }
    if (last_js) {
        js_free(ctx, last_js);
        last_js = NULL;
    }
    OUT.ptr = 0;
    OUT.len = 0;
    OUT.kind = KP_KIND_UNDEFINED;
}

static int interrupt_handler(JSRuntime *r, void *opaque)
{
    (void)r;
    (void)opaque;
    if (interrupt_flag) {
        interrupted = 1;
        return 1;
    }
    return 0;
}

__attribute__((export_name("kp_buf")))
uint32_t kp_buf(uint32_t size)
{
    if (size >= 0x7FFFFFFFu) /* no wasm32 heap holds it; and the doubling below would wrap to 0 */
        return 0;
    if (size + 1 > scratch_cap) {
        uint32_t cap = scratch_cap ? scratch_cap : 4096;
        while (cap < size + 1)
            cap *= 2;
        char *p = realloc(scratch, cap);
        if (!p)
            return 0;
        scratch = p;
        scratch_cap = cap;
        OUT.scratch_ptr = (uint32_t)(uintptr_t)scratch;
        OUT.scratch_cap = scratch_cap;
    }
    return (uint32_t)(uintptr_t)scratch;
}

__attribute__((export_name("kp_out")))
uint32_t kp_out(void)
{
    return (uint32_t)(uintptr_t)&OUT;
}

__attribute__((export_name("kp_flag")))
uint32_t kp_flag(void)
{
    return (uint32_t)(uintptr_t)&interrupt_flag;
}

/* Values nested deeper than this do not leave the VM. JSON.stringify looks for cycles by scanning its whole
 * stack at every level, with no interrupt check: a 100,000-deep value would run for seconds inside one
 * builtin and only the epoch backstop would end it, killing the VM. Python's json could not decode it
 * either (its recursion limit is 1,000). */
#define KP_MAX_DEPTH 512

static JSObject *depth_path[KP_MAX_DEPTH + 1];
/* Objects nested_too_deep visits in one check at most: a value whose objects are shared many times over
 * (o = {a: o2, b: o2}, o2 = {a: o3, b: o3}, ...) has exponentially many paths. Past this the check gives up
 * and JSON.stringify, writing every path out, ends at the memory limit instead. */
#define KP_DEPTH_VISITS (1u << 22)
static uint32_t depth_visits;

/* 1 if v nests objects deeper than KP_MAX_DEPTH. Reads the object layout directly (quickjs.c is included):
 * no allocation, no property lookup, no JS runs, so it cannot throw. Only plain data properties are
 * followed; what getters or toJSON produce is bounded by the CPU limits alone. A cycle (an object met again
 * on its own path) is not followed: JSON.stringify reports it as such. Callers reset depth_visits. */
static int nested_too_deep(JSValueConst v, int depth)
{
    if (JS_VALUE_GET_TAG(v) != JS_TAG_OBJECT)
        return 0;
    JSObject *p = JS_VALUE_GET_OBJ(v);
    for (int i = 0; i < depth; i++)
        if (depth_path[i] == p)
            return 0;
    if (depth == KP_MAX_DEPTH)
        return 1;
    if (++depth_visits > KP_DEPTH_VISITS)
        return 0;
    depth_path[depth] = p;
    if (p->class_id == JS_CLASS_ARRAY && p->fast_array) {
        for (uint32_t i = 0; i < p->u.array.count; i++)
            if (nested_too_deep(p->u.array.u.values[i], depth + 1))
                return 1;
    }
    JSShape *sh = p->shape;
    JSShapeProperty *prs = get_shape_prop(sh);
    for (int i = 0; i < sh->prop_count; i++, prs++) {
        if (prs->atom != JS_ATOM_NULL && (prs->flags & JS_PROP_TMASK) == JS_PROP_NORMAL &&
            nested_too_deep(p->prop[i].u.value, depth + 1))
            return 1;
    }
    return 0;
}

/* JSON.stringify(v), refusing values nested too deeply. */
static JSValue to_json(JSContext *c, JSValueConst v)
{
    depth_visits = 0;
    if (nested_too_deep(v, 0))
        return JS_ThrowRangeError(c, "value is nested more than %d levels deep: it cannot be passed to the host",
                                  KP_MAX_DEPTH);
    return JS_JSONStringify(c, v, JS_UNDEFINED, JS_UNDEFINED);
}

static int put_plain_json(JSContext *c, DynBuf *b, JSValueConst v, int depth);

/* JSON.stringify(v) into OUT (written directly for plain data). Returns KP_OK or an exception status. */
static int set_out_json(JSValueConst v)
{
    release_last();
    if (JS_IsUndefined(v))
        return KP_OK;
    DynBuf b;
    js_dbuf_init(ctx, &b);
    int r = put_plain_json(ctx, &b, v, 0);
    if (r == 0) {
        last_js = b.buf;
        OUT.ptr = (uint32_t)(uintptr_t)b.buf;
        OUT.len = (uint32_t)b.size;
        OUT.kind = KP_KIND_JSON;
        return KP_OK;
    }
    dbuf_free(&b);
    if (r < 0)
        return -1;
    JSValue s = to_json(ctx, v);
    if (JS_IsException(s))
        return -1;
    if (JS_IsUndefined(s)) { /* functions, symbols */
        return KP_OK;
    }
    size_t len;
    const char *c = JS_ToCStringLen(ctx, &len, s);
    JS_FreeValue(ctx, s);
    if (!c)
        return -1;
    last_cstr = c;
    OUT.ptr = (uint32_t)(uintptr_t)c;
    OUT.len = (uint32_t)len;
    OUT.kind = KP_KIND_JSON;
    return KP_OK;
}

static int is_oom_error(JSValueConst exc)
{
    if (!JS_IsError(exc))
        return 0;
    JSValue msg = JS_GetPropertyStr(ctx, exc, "message");
    const char *m = JS_ToCString(ctx, msg);
    JS_FreeValue(ctx, msg);
    int oom = m && strcmp(m, "out of memory") == 0;
    if (m)
        JS_FreeCString(ctx, m);
    return oom;
}

/* Turn an exception value into OUT = {name, message, stack, value?}; returns the status to report. */
static int describe_exception(JSValue exc)
{
    int status = KP_EXCEPTION;
    if (interrupted) {
        status = KP_INTERRUPTED;
    } else if (kp_oom_hits && (JS_IsNull(exc) || is_oom_error(exc))) {
        status = KP_OOM;
    }
    interrupted = 0;
    kp_oom_hits = 0;
    JSValue obj = JS_NewObject(ctx);
    if (JS_IsException(obj)) {
        JS_FreeValue(ctx, exc);
        release_last();
        return status == KP_EXCEPTION ? KP_OOM : status;
    }
    if (JS_IsError(exc)) {
        JS_SetPropertyStr(ctx, obj, "name", JS_GetPropertyStr(ctx, exc, "name"));
        JS_SetPropertyStr(ctx, obj, "message", JS_GetPropertyStr(ctx, exc, "message"));
        JS_SetPropertyStr(ctx, obj, "stack", JS_GetPropertyStr(ctx, exc, "stack"));
        JSValue code = JS_GetPropertyStr(ctx, exc, "code");
        if (JS_IsNumber(code))
            JS_SetPropertyStr(ctx, obj, "code", code);
        else
            JS_FreeValue(ctx, code);
    } else {
        JS_SetPropertyStr(ctx, obj, "name", JS_NewString(ctx, ""));
        JS_SetPropertyStr(ctx, obj, "message", JS_ToString(ctx, exc));
        JS_SetPropertyStr(ctx, obj, "value", JS_DupValue(ctx, exc));
    }
    JS_FreeValue(ctx, exc);
    if (set_out_json(obj) != KP_OK) {
        /* value not serialisable (cycle, BigInt): drop it and try again */
        JS_FreeValue(ctx, JS_GetException(ctx));
        JS_DeleteProperty(ctx, obj, JS_NewAtom(ctx, "value"), 0);
        if (set_out_json(obj) != KP_OK) {
            JS_FreeValue(ctx, JS_GetException(ctx));
            release_last();
        }
    }
    JS_FreeValue(ctx, obj);
    return status;
}

static int take_exception(void)
{
    return describe_exception(JS_GetException(ctx));
}

static int run_jobs(void)
{
    JSContext *c;
    for (;;) {
        int r = JS_ExecutePendingJob(rt, &c);
        if (r == 0)
            return KP_OK;
        if (r < 0)
            return take_exception();
    }
}

/* Run the job queue without losing OUT, the answer of the call or eval that queued the jobs: a JSON answer
 * still owned by QuickJS is copied first, and OUT is set aside while the jobs run (they may set it). */
static int run_jobs_keeping_out(void)
{
    if (!JS_IsJobPending(rt)) /* nothing can touch OUT: no copy (a 100 KB answer is copied for nothing) */
        return KP_OK;
    if (OUT.kind == KP_KIND_JSON) {
        char *copy = malloc(OUT.len + 1);
        if (!copy)
            return KP_OOM;
        memcpy(copy, (const char *)(uintptr_t)OUT.ptr, OUT.len);
        uint32_t len = OUT.len;
        release_last();
        last_owned = copy;
        OUT.ptr = (uint32_t)(uintptr_t)copy;
        OUT.len = len;
        OUT.kind = KP_KIND_JSON;
    }
    uint32_t keep_ptr = OUT.ptr, keep_len = OUT.len, keep_kind = OUT.kind;
    char *keep_owned = last_owned;
    last_owned = NULL;
    OUT.kind = KP_KIND_UNDEFINED;
    int s = run_jobs();
    if (s != KP_OK) {
        free(keep_owned);
        return s;
    }
    release_last();
    last_owned = keep_owned;
    OUT.ptr = keep_ptr;
    OUT.len = keep_len;
    OUT.kind = keep_kind;
    return KP_OK;
}

/* Every entry point that runs JS starts with no answer, no pending interrupt and no out-of-memory hits. */
static void begin_entry(void)
{
    release_last();
    interrupt_flag = 0;
    interrupted = 0;
    kp_oom_hits = 0;
}

/* ---- host functions ---------------------------------------------------------------------------- */

static uint32_t pending_alloc(JSValue resolve, JSValue reject)
{
    uint32_t id;
    if (free_pending_head) {
        id = free_pending_head;
        free_pending_head = JS_VALUE_GET_INT(pending_funcs[2 * id]);
    } else {
        if (next_pending >= pending_cap) {
            uint32_t cap = pending_cap ? pending_cap * 2 : 64;
            JSValue *p = realloc(pending_funcs, sizeof(JSValue) * 2 * cap);
            if (!p)
                return 0;
            pending_funcs = p;
            pending_cap = cap;
        }
        id = next_pending++;
    }
    pending_funcs[2 * id] = resolve;
    pending_funcs[2 * id + 1] = reject;
    return id;
}

static void pending_release(uint32_t id)
{
    JS_FreeValue(ctx, pending_funcs[2 * id]);
    JS_FreeValue(ctx, pending_funcs[2 * id + 1]);
    pending_funcs[2 * id] = JS_NewInt32(ctx, (int32_t)free_pending_head);
    pending_funcs[2 * id + 1] = JS_UNDEFINED;
    free_pending_head = id;
}

/* Parse n bytes of JSON that the host left in scratch. */
static JSValue parse_scratch(int32_t n)
{
    if (n <= 0)
        return JS_UNDEFINED;
    if ((uint32_t)n >= scratch_cap)
        return JS_ThrowInternalError(ctx, "the host answered with %d bytes, more than its buffer holds", n);
    scratch[n] = 0;
    return JS_ParseJSON(ctx, scratch, (size_t)n, "<host>");
}

/* The error of a failed host call (answer n < 0): an Error with the host's message, or JS_EXCEPTION. */
static JSValue error_from_scratch(int32_t n)
{
    if (n == KP_HOST_NO_ROOM)
        return JS_ThrowInternalError(ctx, "the host call failed and its error did not fit into the plugin's memory");
    n = -n - 1;
    JSValue msg = parse_scratch(n);
    if (JS_IsException(msg))
        return msg;
    JSValue err = JS_NewError(ctx);
    if (JS_IsException(err)) {
        JS_FreeValue(ctx, msg);
        return err;
    }
    JS_DefinePropertyValueStr(ctx, err, "message", JS_ToString(ctx, msg),
                              JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE);
    JS_FreeValue(ctx, msg);
    return err;
}

/* ---- host call arguments as JSON ------------------------------------------------------------- */

/* The arguments of a host call cross as a JSON array. JSON.stringify quotes a string one character at a time
 * (24 us for 4 KiB here, most of the fixed cost of a storage.put: docs/adr/0003-host-benchmark.md), so string
 * arguments are quoted here instead, copying runs of bytes that need no escape. The text is the bytes that
 * JSON.stringify gives: the same escapes, lone surrogates as lowercase \udxxx. */

#define EVERY_BYTE(b) (0x0101010101010101ULL * (uint8_t)(b))

/* Nonzero when some byte of w is zero (exact as a yes/no answer: stray bits only sit above a zero byte). */
static inline uint64_t has_zero_byte(uint64_t w)
{
    return (w - EVERY_BYTE(0x01)) & ~w & EVERY_BYTE(0x80);
}

/* 1 if all 8 bytes go into a JSON string as they are: no control byte, quote, backslash, or 0xED, the first
 * byte of a surrogate's three-byte form (JS_ToCStringLen keeps lone surrogates that way). */
static inline int plain_word(uint64_t w)
{
    uint64_t below_space = (w - EVERY_BYTE(0x20)) & ~w & EVERY_BYTE(0x80);
    return !(below_space | has_zero_byte(w ^ EVERY_BYTE('"')) | has_zero_byte(w ^ EVERY_BYTE('\\')) |
             has_zero_byte(w ^ EVERY_BYTE(0xED)));
}

/* Append s to b as a quoted JSON string in UTF-8. s is UTF-8 from JS_ToCStringLen or, with latin1, the
 * characters of a one-byte JSString as they are (0x80-0xFF become two bytes here, which saves
 * JS_ToCStringLen's pass over an ASCII string). -1 when out of memory (thrown). */
static int put_json_string(DynBuf *b, const uint8_t *s, size_t len, int latin1)
{
    const uint64_t special_high = latin1 ? EVERY_BYTE(0x80) : 0;
    static const char hex[] = "0123456789abcdef";
    if (dbuf_claim(b, len + 2))
        return -1;
    b->buf[b->size++] = '"';
    size_t i = 0, copied = 0;
    while (i < len) {
        uint64_t w;
        if (i + 8 <= len) {
            memcpy(&w, s + i, 8);
            if (plain_word(w) && !(w & special_high)) {
                i += 8;
                continue;
            }
        }
        uint8_t c = s[i];
        if (latin1 && c >= 0x80) {
            uint8_t utf8[2] = {(uint8_t)(0xC0 | (c >> 6)), (uint8_t)(0x80 | (c & 0x3F))};
            dbuf_put(b, s + copied, i - copied);
            dbuf_put(b, utf8, 2);
            copied = ++i;
            continue;
        }
        int lone_surrogate = !latin1 && c == 0xED && i + 2 < len && s[i + 1] >= 0xA0;
        if (c >= 0x20 && c != '"' && c != '\\' && !lone_surrogate) {
            i++;
            continue;
        }
        dbuf_put(b, s + copied, i - copied);
        char esc[6] = {'\\', (char)c};
        size_t n = 2;
        switch (c) {
        case '"': case '\\': break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default: {
            uint32_t u = lone_surrogate ? 0xD000u | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu) : c;
            esc[1] = 'u';
            esc[2] = hex[u >> 12];
            esc[3] = hex[(u >> 8) & 15];
            esc[4] = hex[(u >> 4) & 15];
            esc[5] = hex[u & 15];
            n = 6;
        }
        }
        dbuf_put(b, esc, n);
        i += lone_surrogate ? 3 : 1;
        copied = i;
    }
    dbuf_put(b, s + copied, len - copied);
    dbuf_putc(b, '"');
    return dbuf_error(b) ? -1 : 0;
}

/* ---- plain data to JSON without JSON.stringify --------------------------------------------------------
 * JSON.stringify builds a JS string one character at a time, looks up toJSON on every object, makes a string
 * of every array index and searches its stack of open objects at each level; the host then needs the result
 * converted to UTF-8 as well. For plain data (docs/adr/0008-big-bundles-many-plugins.md, section 5) the text
 * is written here directly in UTF-8, byte for byte what JSON.stringify and JS_ToCStringLen give. "Plain"
 * means nothing JSON.stringify would run JS for or treat specially: strings, numbers, booleans, null;
 * objects of class Object whose prototype is Object.prototype or null, with only data properties and no
 * array-index keys (those come first in JSON.stringify's key order); dense arrays whose length is their
 * element count, with no other own property and Array.prototype as prototype; neither prototype may have a
 * toJSON. Anything else (a function, BigInt, Date, Proxy, getter, cycle, nesting near KP_MAX_DEPTH) makes the
 * whole value go through JSON.stringify, so errors and toJSON behave exactly as there. No JS runs here. */

#define KP_NOT_PLAIN 1

static JSObject *plain_path[KP_MAX_DEPTH]; /* the objects open at each depth, to see a cycle */

/* 1 if neither Object.prototype nor Array.prototype has a toJSON and Array.prototype inherits directly
 * from Object.prototype: then a plain object's or array's toJSON lookup finds nothing without running JS. */
static int plain_json_possible(JSContext *c)
{
    JSObject *op = JS_VALUE_GET_OBJ(c->class_proto[JS_CLASS_OBJECT]);
    JSObject *ap = JS_VALUE_GET_OBJ(c->class_proto[JS_CLASS_ARRAY]);
    return op->shape->proto == NULL && ap->shape->proto == op && !find_own_property1(op, JS_ATOM_toJSON) &&
           !find_own_property1(ap, JS_ATOM_toJSON);
}

/* Append the characters of a two-byte JSString as a quoted JSON string in UTF-8: the escapes of
 * put_json_string, pairs of surrogates as one four-byte character, lone surrogates as \udxxx. */
static int put_json_string16(DynBuf *b, const uint16_t *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    if (dbuf_putc(b, '"'))
        return -1;
    size_t i = 0;
    while (i < len) {
        size_t block = len - i < 4096 ? len - i : 4096; /* at most 6 bytes a character: claim per block */
        if (dbuf_claim(b, 6 * block + 6))
            return -1;
        uint8_t *o = b->buf + b->size;
        size_t end = i + block;
        while (i < end) {
            uint32_t c = s[i++];
            if (c < 0x80) {
                if (c >= 0x20 && c != '"' && c != '\\') {
                    *o++ = (uint8_t)c;
                    continue;
                }
                *o++ = '\\';
                switch (c) {
                case '"': case '\\': *o++ = (uint8_t)c; break;
                case '\b': *o++ = 'b'; break;
                case '\f': *o++ = 'f'; break;
                case '\n': *o++ = 'n'; break;
                case '\r': *o++ = 'r'; break;
                case '\t': *o++ = 't'; break;
                default:
                    *o++ = 'u'; *o++ = '0'; *o++ = '0'; *o++ = hex[c >> 4]; *o++ = hex[c & 15];
                }
            } else if (c < 0x800) {
                *o++ = (uint8_t)(0xC0 | (c >> 6));
                *o++ = (uint8_t)(0x80 | (c & 0x3F));
            } else if (c >= 0xD800 && c <= 0xDBFF && i < len && s[i] >= 0xDC00 && s[i] <= 0xDFFF) {
                uint32_t cp = 0x10000 + ((c - 0xD800) << 10) + (s[i++] - 0xDC00u);
                *o++ = (uint8_t)(0xF0 | (cp >> 18));
                *o++ = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
                *o++ = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
                *o++ = (uint8_t)(0x80 | (cp & 0x3F));
            } else if (c >= 0xD800 && c <= 0xDFFF) {
                *o++ = '\\'; *o++ = 'u';
                *o++ = hex[c >> 12]; *o++ = hex[(c >> 8) & 15]; *o++ = hex[(c >> 4) & 15]; *o++ = hex[c & 15];
            } else {
                *o++ = (uint8_t)(0xE0 | (c >> 12));
                *o++ = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
                *o++ = (uint8_t)(0x80 | (c & 0x3F));
            }
        }
        b->size = (size_t)(o - b->buf);
    }
    return dbuf_putc(b, '"');
}

/* A flat JSString (a string value or an atom's text) as a quoted JSON string in UTF-8. */
static int put_json_jsstring(DynBuf *b, JSString *p)
{
    return p->is_wide_char ? put_json_string16(b, str16(p), p->len) : put_json_string(b, str8(p), p->len, 1);
}

/* Append v's JSON text if v is plain data. 0: written; KP_NOT_PLAIN: it is not (b holds a partial text the
 * caller drops); -1: out of memory. undefined and symbols are not plain at this level: an object skips them
 * and an array writes null before coming here. */
static int plain_json(JSContext *c, DynBuf *b, JSValueConst v, int depth)
{
    char num[64];
    switch (JS_VALUE_GET_NORM_TAG(v)) {
    case JS_TAG_STRING:
        return put_json_jsstring(b, JS_VALUE_GET_STRING(v));
    case JS_TAG_INT:
        return dbuf_put(b, num, i32toa(num, JS_VALUE_GET_INT(v)));
    case JS_TAG_FLOAT64: {
        double d = JS_VALUE_GET_FLOAT64(v);
        if (!isfinite(d))
            return dbuf_putstr(b, "null");
        JSDTOATempMem mem;
        return dbuf_put(b, num, (size_t)js_dtoa(num, d, 10, 0, JS_DTOA_FORMAT_FREE, &mem));
    }
    case JS_TAG_BOOL:
        return dbuf_putstr(b, JS_VALUE_GET_BOOL(v) ? "true" : "false");
    case JS_TAG_NULL:
        return dbuf_putstr(b, "null");
    case JS_TAG_OBJECT:
        break;
    default: /* ropes, BigInt, undefined, symbols */
        return KP_NOT_PLAIN;
    }
    JSObject *p = JS_VALUE_GET_OBJ(v);
    if (depth >= KP_MAX_DEPTH) /* deep nesting: to_json reports it */
        return KP_NOT_PLAIN;
    for (int i = 0; i < depth; i++) /* a cycle: JSON.stringify reports it */
        if (plain_path[i] == p)
            return KP_NOT_PLAIN;
    plain_path[depth] = p;
    JSShape *sh = p->shape;
    if (p->class_id == JS_CLASS_ARRAY) {
        JSValue length = p->prop[0].u.value;
        if (!p->fast_array || sh->proto != JS_VALUE_GET_OBJ(c->class_proto[JS_CLASS_ARRAY]) ||
            sh->prop_count != 1 || JS_VALUE_GET_TAG(length) != JS_TAG_INT ||
            (uint32_t)JS_VALUE_GET_INT(length) != p->u.array.count)
            return KP_NOT_PLAIN;
        if (dbuf_putc(b, '['))
            return -1;
        for (uint32_t i = 0; i < p->u.array.count; i++) {
            JSValueConst e = p->u.array.u.values[i];
            if (i && dbuf_putc(b, ','))
                return -1;
            int tag = JS_VALUE_GET_NORM_TAG(e);
            int r = tag == JS_TAG_UNDEFINED || tag == JS_TAG_SYMBOL ? dbuf_putstr(b, "null")
                                                                   : plain_json(c, b, e, depth + 1);
            if (r)
                return r;
        }
        return dbuf_putc(b, ']');
    }
    if (p->class_id != JS_CLASS_OBJECT ||
        (sh->proto && sh->proto != JS_VALUE_GET_OBJ(c->class_proto[JS_CLASS_OBJECT])))
        return KP_NOT_PLAIN;
    if (dbuf_putc(b, '{'))
        return -1;
    int first = 1;
    JSShapeProperty *prs = get_shape_prop(sh);
    for (int i = 0; i < sh->prop_count; i++, prs++) {
        JSAtom atom = prs->atom;
        uint32_t index;
        if (atom == JS_ATOM_NULL)
            continue;
        if (atom == JS_ATOM_toJSON || JS_AtomIsArrayIndex(c, &index, atom))
            return KP_NOT_PLAIN;
        JSString *key = c->rt->atom_array[atom];
        if (key->atom_type != JS_ATOM_TYPE_STRING || !(prs->flags & JS_PROP_ENUMERABLE))
            continue;
        if ((prs->flags & JS_PROP_TMASK) != JS_PROP_NORMAL)
            return KP_NOT_PLAIN;
        JSValueConst e = p->prop[i].u.value;
        int tag = JS_VALUE_GET_NORM_TAG(e);
        if (tag == JS_TAG_UNDEFINED || tag == JS_TAG_SYMBOL)
            continue;
        if ((!first && dbuf_putc(b, ',')) || put_json_jsstring(b, key) || dbuf_putc(b, ':'))
            return -1;
        first = 0;
        int r = plain_json(c, b, e, depth + 1);
        if (r)
            return r;
    }
    return dbuf_putc(b, '}');
}

/* v's JSON text into b (initialised by the caller) when v is plain data: 0 written, KP_NOT_PLAIN (b
 * emptied again) or -1 with the out-of-memory error thrown. */
static int put_plain_json(JSContext *c, DynBuf *b, JSValueConst v, int depth)
{
    size_t start = b->size;
    if (!plain_json_possible(c))
        return KP_NOT_PLAIN;
    for (int i = 0; i < depth; i++)
        plain_path[i] = NULL;
    int r = plain_json(c, b, v, depth);
    if (r == 0 && dbuf_error(b))
        r = -1;
    if (r < 0) {
        JS_ThrowOutOfMemory(c);
        return -1;
    }
    if (r == KP_NOT_PLAIN) {
        b->size = start;
        b->error = false;
    }
    return r;
}

/* Append the JSON text of one argument. Strings, integers, booleans, null and undefined (null, as in an
 * array) are written here; anything else as JSON.stringify(arg): its toJSON, if any, sees the key "" of a
 * top-level value, not its index. -1 with an exception pending on failure. */
static int put_json_arg(JSContext *c, DynBuf *b, JSValueConst v)
{
    switch (JS_VALUE_GET_NORM_TAG(v)) {
    case JS_TAG_STRING:
        return put_json_jsstring(b, JS_VALUE_GET_STRING(v));
    case JS_TAG_STRING_ROPE: {
        size_t len;
        const char *s = JS_ToCStringLen(c, &len, v);
        if (!s)
            return -1;
        int r = put_json_string(b, (const uint8_t *)s, len, 0);
        JS_FreeCString(c, s);
        return r;
    }
    case JS_TAG_INT:
        return dbuf_printf(b, "%d", (int)JS_VALUE_GET_INT(v)) < 0 ? -1 : 0;
    case JS_TAG_BOOL:
        return dbuf_putstr(b, JS_VALUE_GET_BOOL(v) ? "true" : "false");
    case JS_TAG_NULL:
    case JS_TAG_UNDEFINED:
        return dbuf_putstr(b, "null");
    default: {
        int r = put_plain_json(c, b, v, 1); /* 1: the arguments array is depth 0 */
        if (r != KP_NOT_PLAIN)
            return r;
    }
    }
    depth_path[0] = NULL; /* the arguments array, at depth 0, is not an object here */
    depth_visits = 0;
    if (nested_too_deep(v, 1)) {
        JS_ThrowRangeError(c, "value is nested more than %d levels deep: it cannot be passed to the host",
                           KP_MAX_DEPTH);
        return -1;
    }
    JSValue json = JS_JSONStringify(c, v, JS_UNDEFINED, JS_UNDEFINED);
    if (JS_IsException(json))
        return -1;
    if (JS_IsUndefined(json)) /* functions, symbols: null, as in an array */
        return dbuf_putstr(b, "null");
    size_t len;
    const char *s = JS_ToCStringLen(c, &len, json);
    JS_FreeValue(c, json);
    if (!s)
        return -1;
    int r = dbuf_put(b, s, len);
    JS_FreeCString(c, s);
    return r;
}

/* The JSON array of argv into b (initialised here; the caller frees it). -1 with an exception pending. */
static int host_args_json(JSContext *c, DynBuf *b, int argc, JSValueConst *argv)
{
    js_dbuf_init(c, b);
    int failed = dbuf_putc(b, '[');
    for (int i = 0; i < argc && !failed; i++)
        failed = (i && dbuf_putc(b, ',')) || put_json_arg(c, b, argv[i]);
    if (!failed)
        failed = dbuf_putc(b, ']');
    if (failed && !JS_HasException(c)) /* the buffer could not grow */
        JS_ThrowOutOfMemory(c);
    return failed ? -1 : 0;
}

/* data[0] = host function id, data[1] = is_async */
static JSValue host_trampoline(JSContext *c, JSValueConst this_val, int argc, JSValueConst *argv,
                               int magic, JSValueConst *data)
{
    (void)this_val;
    (void)magic;
    int32_t fn_id = JS_VALUE_GET_INT(data[0]);
    int is_async = JS_VALUE_GET_INT(data[1]);

    DynBuf args;
    if (host_args_json(c, &args, argc, argv)) {
        dbuf_free(&args);
        return JS_EXCEPTION;
    }

    if (!is_async) {
        int32_t n = kp_host_call(fn_id, (const char *)args.buf, (int32_t)args.size, 0);
        dbuf_free(&args);
        if (n >= 0)
            return parse_scratch(n);
        JSValue err = error_from_scratch(n);
        if (JS_IsException(err)) /* thrown already (out of memory) */
            return err;
        return JS_Throw(c, err);
    }

    JSValue funcs[2];
    JSValue promise = JS_NewPromiseCapability(c, funcs);
    if (JS_IsException(promise)) {
        dbuf_free(&args);
        return promise;
    }
    uint32_t pid = pending_alloc(funcs[0], funcs[1]);
    if (!pid) {
        dbuf_free(&args);
        JS_FreeValue(c, funcs[0]);
        JS_FreeValue(c, funcs[1]);
        JS_FreeValue(c, promise);
        return JS_ThrowOutOfMemory(c);
    }
    int32_t n = kp_host_call(fn_id, (const char *)args.buf, (int32_t)args.size, (int32_t)pid);
    dbuf_free(&args);
    if (n < 0) { /* refused at once: reject (asynchronously, as any rejection) */
        JSValue err = error_from_scratch(n);
        if (JS_IsException(err))
            err = JS_GetException(c);
        JSValue r = JS_Call(c, pending_funcs[2 * pid + 1], JS_UNDEFINED, 1, (JSValueConst *)&err);
        JS_FreeValue(c, r);
        JS_FreeValue(c, err);
        pending_release(pid);
    }
    return promise;
}

__attribute__((export_name("kp_register")))
int32_t kp_register(int32_t name_len, int32_t fn_id, int32_t is_async)
{
    scratch[name_len] = 0;
    JSValue data[2] = {JS_NewInt32(ctx, fn_id), JS_NewInt32(ctx, is_async)};
    JSValue f = JS_NewCFunctionData(ctx, host_trampoline, 0, 0, 2, data);
    if (JS_IsException(f))
        return take_exception();
    JSValue global = JS_GetGlobalObject(ctx);
    int r = JS_DefinePropertyValueStr(ctx, global, scratch, f, JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE);
    JS_FreeValue(ctx, global);
    return r < 0 ? take_exception() : KP_OK;
}

/* Settle promise `pid` of an async host function with JSON (ok) or an error message (JSON string) in
 * scratch, then run the job queue. */
__attribute__((export_name("kp_settle")))
int32_t kp_settle(int32_t pid, int32_t is_error, int32_t len)
{
    begin_entry();
    if (pid <= 0 || (uint32_t)pid >= next_pending || JS_IsNumber(pending_funcs[2 * pid]))
        return KP_ERROR;
    JSValue v = is_error ? error_from_scratch(-len - 1) : parse_scratch(len);
    int which = is_error ? 1 : 0;
    if (JS_IsException(v)) {
        v = JS_GetException(ctx);
        which = 1;
    }
    JSValue r = JS_Call(ctx, pending_funcs[2 * pid + which], JS_UNDEFINED, 1, (JSValueConst *)&v);
    JS_FreeValue(ctx, v);
    JS_FreeValue(ctx, r);
    pending_release((uint32_t)pid);
    return run_jobs();
}

/* ---- calls from the host ----------------------------------------------------------------------- */

/* Promise reactions for kp_call results: report the outcome to the host with the call token. */
static JSValue settle_reaction(JSContext *c, JSValueConst this_val, int argc, JSValueConst *argv, int magic,
                               JSValueConst *data)
{
    (void)this_val;
    int32_t token = JS_VALUE_GET_INT(data[0]);
    JSValue v = argc > 0 ? JS_DupValue(c, argv[0]) : JS_UNDEFINED;
    int status;
    if (magic == 0) {
        status = set_out_json(v);
        JS_FreeValue(c, v);
        if (status != KP_OK) {
            status = take_exception();
            kp_host_call(KP_OP_SETTLED_ERR, (const char *)(uintptr_t)OUT.ptr, (int32_t)OUT.len, token);
            return JS_UNDEFINED;
        }
        kp_host_call(KP_OP_SETTLED_OK, OUT.kind == KP_KIND_JSON ? (const char *)(uintptr_t)OUT.ptr : NULL,
                     OUT.kind == KP_KIND_JSON ? (int32_t)OUT.len : -1, token);
    } else {
        describe_exception(v);
        kp_host_call(KP_OP_SETTLED_ERR, (const char *)(uintptr_t)OUT.ptr, (int32_t)OUT.len, token);
    }
    return JS_UNDEFINED;
}

static JSValue resolve_path(const char *path, JSValue *this_out)
{
    JSValue obj = JS_GetGlobalObject(ctx);
    JSValue parent = JS_UNDEFINED;
    const char *p = path;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        JSAtom atom = JS_NewAtomLen(ctx, p, n);
        JSValue next = JS_GetProperty(ctx, obj, atom);
        JS_FreeAtom(ctx, atom);
        JS_FreeValue(ctx, parent);
        parent = obj;
        obj = next;
        if (JS_IsException(obj) || !dot)
            break;
        p = dot + 1;
    }
    *this_out = parent;
    return obj;
}

/* scratch: "<dotted.name>\0<JSON array of args>\0". Calls the function with the array spread.
 * token != 0: if the result is a Promise, report its outcome later via host_call(SETTLED, token). */
__attribute__((export_name("kp_call")))
int32_t kp_call(int32_t name_len, int32_t args_len, int32_t token)
{
    begin_entry();
    scratch[name_len] = 0;
    char *args_text = scratch + name_len + 1;
    args_text[args_len] = 0;
    JSValue this_obj;
    JSValue fn = resolve_path(scratch, &this_obj);
    if (JS_IsException(fn)) {
        JS_FreeValue(ctx, this_obj);
        return take_exception();
    }
    if (!JS_IsFunction(ctx, fn)) {
        JS_FreeValue(ctx, fn);
        JS_FreeValue(ctx, this_obj);
        JS_ThrowTypeError(ctx, "%s is not a function", scratch);
        return take_exception();
    }
    JSValue args = args_len > 0 ? JS_ParseJSON(ctx, args_text, (size_t)args_len, "<args>") : JS_NewArray(ctx);
    if (JS_IsException(args)) {
        JS_FreeValue(ctx, fn);
        JS_FreeValue(ctx, this_obj);
        return take_exception();
    }
    int64_t argc64 = 0;
    JS_GetLength(ctx, args, &argc64);
    int argc = (int)argc64;
    JSValue *argv = argc ? js_malloc(ctx, sizeof(JSValue) * (size_t)argc) : NULL;
    if (argc && !argv) {
        JS_FreeValue(ctx, args);
        JS_FreeValue(ctx, fn);
        JS_FreeValue(ctx, this_obj);
        return take_exception();
    }
    for (int i = 0; i < argc; i++)
        argv[i] = JS_GetPropertyUint32(ctx, args, (uint32_t)i);
    JS_FreeValue(ctx, args);
    JSValue r = JS_Call(ctx, fn, this_obj, argc, (JSValueConst *)argv);
    for (int i = 0; i < argc; i++)
        JS_FreeValue(ctx, argv[i]);
    if (argv)
        js_free(ctx, argv);
    JS_FreeValue(ctx, fn);
    JS_FreeValue(ctx, this_obj);
    if (JS_IsException(r))
        return take_exception();

    if (token && JS_IsPromise(r)) {
        JSValue tok = JS_NewInt32(ctx, token);
        JSValue handlers[2] = {
            JS_NewCFunctionData(ctx, settle_reaction, 1, 0, 1, &tok),
            JS_NewCFunctionData(ctx, settle_reaction, 1, 1, 1, &tok),
        };
        JSValue then = JS_GetPropertyStr(ctx, r, "then");
        JSValue t = JS_Call(ctx, then, r, 2, (JSValueConst *)handlers);
        JS_FreeValue(ctx, then);
        JS_FreeValue(ctx, handlers[0]);
        JS_FreeValue(ctx, handlers[1]);
        JS_FreeValue(ctx, r);
        if (JS_IsException(t))
            return take_exception();
        JS_FreeValue(ctx, t);
        int s = run_jobs();
        if (s != KP_OK)
            return s;
        release_last();
        return KP_PENDING;
    }
    int s = set_out_json(r);
    JS_FreeValue(ctx, r);
    if (s != KP_OK)
        return take_exception();
    return run_jobs_keeping_out();
}

/* scratch: "<file name>\0<source>\0". flags bit 0: report the completion value. */
__attribute__((export_name("kp_eval")))
int32_t kp_eval(int32_t name_len, int32_t code_len, int32_t flags)
{
    begin_entry();
    scratch[name_len] = 0;
    char *code = scratch + name_len + 1;
    code[code_len] = 0;
    JSValue r = JS_Eval(ctx, code, (size_t)code_len, scratch, JS_EVAL_TYPE_GLOBAL);
    if (JS_IsException(r))
        return take_exception();
    if (flags & 1) {
        int s = set_out_json(r);
        if (s != KP_OK) {
            JS_FreeValue(ctx, r);
            return take_exception();
        }
    }
    JS_FreeValue(ctx, r);
    return run_jobs_keeping_out();
}

/* ---- compiled code ----------------------------------------------------------------------------- */

/* scratch: "<file name>\0<source>\0". Compiles the script without running it; OUT = its bytecode (kind
 * BYTES), which the host may cache; the compiled function is kept for kp_run_compiled. */
__attribute__((export_name("kp_compile")))
int32_t kp_compile(int32_t name_len, int32_t code_len)
{
    begin_entry();
    JS_FreeValue(ctx, compiled);
    compiled = JS_UNDEFINED;
    scratch[name_len] = 0;
    char *code = scratch + name_len + 1;
    code[code_len] = 0;
    JSValue fn = JS_Eval(ctx, code, (size_t)code_len, scratch, JS_EVAL_TYPE_GLOBAL | JS_EVAL_FLAG_COMPILE_ONLY);
    if (JS_IsException(fn))
        return take_exception();
    size_t size;
    uint8_t *bytes = JS_WriteObject(ctx, &size, fn, JS_WRITE_OBJ_BYTECODE);
    if (!bytes) {
        JS_FreeValue(ctx, fn);
        return take_exception();
    }
    compiled = fn;
    last_js = bytes;
    OUT.ptr = (uint32_t)(uintptr_t)bytes;
    OUT.len = (uint32_t)size;
    OUT.kind = KP_KIND_BYTES;
    return KP_OK;
}

static int run_function(JSValue fn, int32_t flags)
{
    JSValue r = JS_EvalFunction(ctx, fn); /* takes fn */
    if (JS_IsException(r))
        return take_exception();
    if (flags & 1) {
        int s = set_out_json(r);
        if (s != KP_OK) {
            JS_FreeValue(ctx, r);
            return take_exception();
        }
    }
    JS_FreeValue(ctx, r);
    return run_jobs_keeping_out();
}

/* Runs what kp_compile compiled last. flags bit 0: report the completion value. */
__attribute__((export_name("kp_run_compiled")))
int32_t kp_run_compiled(int32_t flags)
{
    begin_entry();
    if (JS_IsUndefined(compiled))
        return KP_ERROR;
    JSValue fn = compiled;
    compiled = JS_UNDEFINED;
    return run_function(fn, flags);
}

/* scratch: `len` bytes of bytecode from kp_compile (of this very engine build). Reads and runs it. The host
 * only passes bytes it wrote itself and checked (an HMAC): JS_ReadObject trusts bytecode completely. */
__attribute__((export_name("kp_eval_bytecode")))
int32_t kp_eval_bytecode(int32_t len, int32_t flags)
{
    begin_entry();
    if (len <= 0 || (uint32_t)len >= scratch_cap)
        return KP_ERROR;
    JSValue fn = JS_ReadObject(ctx, (const uint8_t *)scratch, (size_t)len, JS_READ_OBJ_BYTECODE);
    if (JS_IsException(fn))
        return take_exception();
    return run_function(fn, flags);
}

__attribute__((export_name("kp_run_jobs")))
int32_t kp_run_jobs(void)
{
    begin_entry();
    return run_jobs();
}

__attribute__((export_name("kp_memory")))
uint32_t kp_memory(void)
{
    JSMemoryUsage u;
    JS_ComputeMemoryUsage(rt, &u);
    return (uint32_t)u.malloc_size;
}

__attribute__((export_name("kp_gc")))
void kp_gc(void)
{
    JS_RunGC(rt);
}

static void rejection_tracker(JSContext *c, JSValueConst promise, JSValueConst reason, bool is_handled,
                              void *opaque)
{
    (void)opaque;
    /* the promise's address identifies it until the host has decided: a handler added later (as `await`
     * does after the rejection) withdraws the report */
    int32_t id = (int32_t)(uintptr_t)JS_VALUE_GET_PTR(promise);
    if (is_handled) {
        kp_host_call(KP_OP_REJECTION_HANDLED, NULL, 0, id);
        return;
    }
    uint32_t saved_ptr = OUT.ptr, saved_len = OUT.len, saved_kind = OUT.kind;
    const char *saved_cstr = last_cstr;
    char *saved_owned = last_owned;
    last_cstr = NULL;
    last_owned = NULL;
    describe_exception(JS_DupValue(c, reason));
    kp_host_call(KP_OP_UNHANDLED_REJECTION, (const char *)(uintptr_t)OUT.ptr, (int32_t)OUT.len, id);
    release_last();
    last_cstr = saved_cstr;
    last_owned = saved_owned;
    OUT.ptr = saved_ptr;
    OUT.len = saved_len;
    OUT.kind = saved_kind;
}

/* seed: 8 bytes of host entropy for Math.random. */
__attribute__((export_name("kp_init")))
int32_t kp_init(uint32_t memory_limit, uint32_t stack_limit, uint32_t seed_lo, uint32_t seed_hi)
{
    if (!kp_buf(4096))
        return KP_OOM;
    rt = JS_NewRuntime();
    if (!rt)
        return KP_OOM;
    if (memory_limit)
        JS_SetMemoryLimit(rt, memory_limit);
    JS_SetMaxStackSize(rt, stack_limit);
    JS_SetInterruptHandler(rt, interrupt_handler, NULL);
    JS_SetHostPromiseRejectionTracker(rt, rejection_tracker, NULL);
    ctx = JS_NewContext(rt);
    if (!ctx)
        return KP_OOM;
    uint64_t seed = ((uint64_t)seed_hi << 32) | seed_lo;
    ctx->random_state = seed ? seed : 1;
    OUT.kind = KP_KIND_UNDEFINED;
    return KP_OK;
}
