/*
 * Test driver for the C in PROTOCOL.md; protocol/spec-c.test.ts builds and runs it.
 *
 * The test extracts every ```c block of PROTOCOL.md, in order, into protocol-md.c and
 * compiles this file, which includes it first: the spec's code is one translation unit
 * that sees nothing of ours. This file is test code for a Linux host (POSIX), not an
 * example for a terminal. What it adds to the spec's C is what the spec leaves to the
 * firmware: steps 5-6 of the receive order, and a decoder for every message type written
 * by the recipe of [LINK-5.1] from the section 5 field tables (INDICATE goes through the
 * spec's own decode_indicate()).
 *
 * Commands on stdin, one per line; one answer line each on stdout:
 *   crc HEX      the spec's crc32c() of the bytes, 8 hex digits
 *   cobs HEX     cobs_encode() of the bytes
 *   uncobs HEX   cobs_decode() of the block, or LINK_BAD_COBS
 *   put M V      cbor_put() of major type M, argument V (decimal)
 *   skip HEX     cbor_skip() of the bytes: ok:N (N bytes passed over) or fail
 *   wire HEX     feeds the bytes to rx_byte() one by one; for each frame or error, in
 *                order, a space-separated word: a wire error code, or
 *                ok:TYPE:HEX where HEX is the frame encoded again, from the decoded
 *                fields, with cbor_put(), crc32c() and cobs_encode(), delimiters included.
 * The input of crc, cobs, uncobs and skip, and every body decoded, is a copy that ends
 * where a page the process may not read begins: a read at or past the end is a SIGSEGV.
 * Every body that decodes is decoded again from each of its proper prefixes and with a
 * byte after it (each must be LINK_BAD_CBOR), and with single bytes changed (anything but
 * a crash).
 */
#define _POSIX_C_SOURCE 200809L
#include "protocol-md.c"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- the wire words ---------------------------------------------------------------- */

static const char *error_name(int code)
{
    switch ((enum link_error)code) {
    case LINK_BAD_COBS: return "LINK_BAD_COBS";
    case LINK_OVERSIZE: return "LINK_OVERSIZE";
    case LINK_TOO_SHORT: return "LINK_TOO_SHORT";
    case LINK_BAD_CRC: return "LINK_BAD_CRC";
    case LINK_BAD_VERSION: return "LINK_BAD_VERSION";
    case LINK_UNKNOWN_TYPE: return "LINK_UNKNOWN_TYPE";
    case LINK_BAD_CBOR: return "LINK_BAD_CBOR";
    case LINK_BAD_SCHEMA: return "LINK_BAD_SCHEMA";
    case LINK_BAD_HEADER: return "LINK_BAD_HEADER";
    }
    return "UNKNOWN_ERROR_CODE";
}

static void put_hex(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) printf("%02x", b[i]);
}

/* ---- bodies that end at an unreadable page ------------------------------------------ */

static uint8_t *guard_end;  /* first byte of a PROT_NONE page */

static void guard_init(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *mem = NULL;
    if (posix_memalign(&mem, page, 2 * page) != 0) abort();
    guard_end = (uint8_t *)mem + page;
    if (mprotect(guard_end, page, PROT_NONE) != 0) abort();
}

static const uint8_t *guarded(const uint8_t *body, size_t n)
{
    uint8_t *copy = guard_end - n;
    memcpy(copy, body, n);
    return copy;
}

/* ---- message decoders by the recipe of [LINK-5.1] ----------------------------------- */

/* ASCII: a text of printable ASCII only (HELLO firmware, [LINK-5.2]). */
enum kind { UINT, INT, TEXT, ASCII, BOOL };
struct field { uint8_t key, kind, required; int32_t min; uint32_t max; };
struct message_def { uint8_t type; const char *name; const struct field *fields; size_t n; };

/* A decoded value, kept as its CBOR head (and the text's bytes) so it can be encoded again. */
struct value { bool present; uint8_t major; uint32_t arg; const uint8_t *text; };
#define MAX_KEY 23

#define U32 0xFFFFFFFFu
static const struct field nak[] = { { 0, UINT, 1, 1, 4 } };
static const struct field hello[] = {
    { 0, TEXT, 1, 1, 32 }, { 1, ASCII, 1, 1, 32 }, { 2, UINT, 1, 0, 0xFFFF },
    { 3, UINT, 1, 0, U32 }, { 4, UINT, 1, 0, U32 }, { 5, UINT, 1, 0, 0xFFFF } };
static const struct field welcome[] = {
    { 0, TEXT, 1, 1, 32 }, { 1, UINT, 1, 0, U32 }, { 2, UINT, 0, 0, U32 }, { 3, UINT, 0, 0, 0xFFFF } };
static const struct field event[] = {
    { 0, UINT, 1, 1, U32 }, { 1, UINT, 1, 0, U32 }, { 2, BOOL, 0, 0, 0 }, { 3, UINT, 0, 0, 999 },
    { 4, UINT, 1, 0, U32 }, { 5, UINT, 1, 0, U32 }, { 6, UINT, 0, 0, U32 } };
static const struct field heartbeat[] = {
    { 0, UINT, 1, 0, U32 }, { 1, BOOL, 1, 0, 0 }, { 2, UINT, 0, 0, 100 }, { 3, UINT, 0, 0, 0xFFFF },
    { 4, INT, 0, -150, 0 }, { 5, UINT, 0, 0, 0xFFFF }, { 6, INT, 0, -60, 100 } };
static const struct field display_read[] = { { 0, UINT, 1, 0, U32 }, { 1, UINT, 0, 0, 0xFFFF } };
static const struct field display[] = {
    { 0, UINT, 1, 0, U32 }, { 1, TEXT, 1, 1, 180 }, { 2, UINT, 1, 0, 2 }, { 3, UINT, 0, 0, U32 },
    { 4, UINT, 0, 1, 15 }, { 5, UINT, 0, 1, 15 }, { 6, UINT, 0, 0, 0xFFFF } };
static const struct field time_[] = { { 0, UINT, 1, 0, U32 }, { 1, BOOL, 1, 0, 0 } };
static const struct field config[] = { { 0, UINT, 0, 10, 86400 }, { 1, BOOL, 0, 0, 0 } };

#define DEF(code, name, f) { code, name, f, sizeof f / sizeof f[0] }
static const struct message_def messages[] = {
    { 0x01, "ACK", NULL, 0 }, DEF(0x02, "NAK", nak), DEF(0x10, "HELLO", hello),
    DEF(0x11, "WELCOME", welcome), DEF(0x20, "EVENT", event), DEF(0x21, "HEARTBEAT", heartbeat),
    DEF(0x22, "DISPLAY_READ", display_read), { 0x30, "INDICATE", NULL, 0 },
    DEF(0x31, "DISPLAY", display), DEF(0x32, "TIME", time_), DEF(0x33, "CONFIG", config),
    { 0x34, "PING", NULL, 0 } };

/* HEARTBEAT signal and temperature: the one reader a terminal does not need. */
static int read_int(const uint8_t **p, const uint8_t *end, int32_t min, uint32_t max, struct value *v)
{
    int major = cbor_head(p, end, &v->arg);
    if (major < 0) return -LINK_BAD_CBOR;
    if (major == 0 && v->arg <= max) { v->major = 0; return 0; }
    if (major == 1 && min < 0 && v->arg <= (uint32_t)(-1 - min)) { v->major = 1; return 0; }
    return -LINK_BAD_SCHEMA;
}

static int read_value(const uint8_t **p, const uint8_t *end, const struct field *f, struct value *v)
{
    bool b = false;
    int err;
    v->text = NULL;
    switch ((enum kind)f->kind) {
    case UINT: v->major = 0; return cbor_uint(p, end, (uint32_t)f->min, f->max, &v->arg);
    case TEXT: v->major = 3; return cbor_text(p, end, (uint32_t)f->min, f->max, &v->text, &v->arg);
    case ASCII:
        v->major = 3;
        err = cbor_text(p, end, (uint32_t)f->min, f->max, &v->text, &v->arg);
        for (uint32_t i = 0; err == 0 && i < v->arg; i++)
            if (v->text[i] < 0x20 || v->text[i] > 0x7E) err = -LINK_BAD_SCHEMA;
        return err;
    case INT: return read_int(p, end, f->min, f->max, v);
    case BOOL:
        err = cbor_bool(p, end, &b);
        v->major = 7;
        v->arg = b ? 21 : 20;
        return err;
    }
    return -LINK_BAD_SCHEMA;
}

/* Contact ID code and restore flag pairs of [LINK-5.4]. */
static bool event_kind_known(uint32_t code, bool restore)
{
    static const uint16_t codes[] = { 100, 101, 110, 120, 406, 901, 301, 302, 383, 602 };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (codes[i] == code) return !restore || code == 301 || code == 302 || code == 383;
    return false;
}

static int decode_by_table(const struct message_def *def, const uint8_t *p, size_t n, struct value *vals)
{
    const uint8_t *end = p + n;
    uint32_t pairs, key;
    int major, err;

    if (cbor_head(&p, end, &pairs) != 5) return -LINK_BAD_CBOR;
    while (pairs-- > 0) {
        const struct field *f = NULL;
        major = cbor_head(&p, end, &key);
        if (major < 0) return -LINK_BAD_CBOR;
        for (size_t i = 0; major == 0 && i < def->n; i++)
            if (def->fields[i].key == key) f = &def->fields[i];
        if (f == NULL) {
            if (cbor_skip_rest(&p, end, major, key, 0) || cbor_skip(&p, end, 0)) return -LINK_BAD_CBOR;
            continue;
        }
        err = read_value(&p, end, f, &vals[key]);
        if (err) return err;
        vals[key].present = true;
    }
    if (p != end) return -LINK_BAD_CBOR;
    for (size_t i = 0; i < def->n; i++)
        if (def->fields[i].required && !vals[def->fields[i].key].present) return -LINK_BAD_SCHEMA;
    if (def->type == 0x20 && !event_kind_known(vals[1].arg, vals[2].present && vals[2].arg == 21))
        return -LINK_BAD_SCHEMA;
    if (def->type == 0x10) vals[2].arg &= 0x7F;  /* capability bits it does not know [LINK-5.3] */
    if (def->type == 0x31 && (vals[4].present != vals[5].present || (vals[4].present && vals[4].arg > vals[5].arg)))
        return -LINK_BAD_SCHEMA;
    return 0;
}

static int decode_body(const struct message_def *def, const uint8_t *p, size_t n, struct value *vals)
{
    struct indicate m;
    int err;
    memset(vals, 0, (MAX_KEY + 1) * sizeof *vals);
    if (def->type != 0x30) return decode_by_table(def, p, n, vals);
    err = decode_indicate(p, n, &m);
    if (err) return err;
    vals[0] = (struct value){ true, 0, m.event, NULL };
    vals[1] = (struct value){ true, 0, m.stage, NULL };
    if (m.text != NULL) vals[2] = (struct value){ true, 3, m.text_len, m.text };
    if (m.has_eta) vals[3] = (struct value){ true, 0, m.eta, NULL };
    return 0;
}

/* ---- the receive path: rx_byte() -> on_block() --------------------------------------- */

static bool first_word;

static void word(const char *w)
{
    printf(first_word ? "%s" : " %s", w);
    first_word = false;
}

void count_error(enum link_error code)
{
    word(error_name(code));
}

/* "ok:TYPE:" and the frame made again from the decoded fields (keys in ascending order,
   as the reference encoder writes them), as wire bytes in hex. */
static void ok_word(const struct message_def *def, const uint8_t *header, const struct value *vals)
{
    static char text[2 * 260 + 40];
    uint8_t frame[256], block[257];
    uint8_t *p = frame + 5;
    uint32_t pairs = 0;
    memcpy(frame, header, 5);
    if (def->type != 0x01) {
        for (int k = 0; k <= MAX_KEY; k++) pairs += vals[k].present;
        p = cbor_put(p, 5, pairs);
        for (uint8_t k = 0; k <= MAX_KEY; k++) {
            if (!vals[k].present) continue;
            p = cbor_put(p, 0, k);
            p = cbor_put(p, vals[k].major, vals[k].arg);
            if (vals[k].major == 3) { memcpy(p, vals[k].text, vals[k].arg); p += vals[k].arg; }
        }
    }
    uint32_t crc = crc32c(frame, (size_t)(p - frame));
    for (int i = 0; i < 4; i++) *p++ = (uint8_t)(crc >> (8 * i));
    size_t n = cobs_encode(frame, (size_t)(p - frame), block);
    int at = sprintf(text, "ok:%s:00", def->name);
    for (size_t i = 0; i < n; i++) at += sprintf(text + at, "%02x", block[i]);
    sprintf(text + at, "00");
    word(text);
}

/* Every proper prefix, and the body with a byte after it, must be LINK_BAD_CBOR (returns
   the first length that is not, or -1); with one byte changed a body may decode or not,
   but must not crash. */
static int abuse(const struct message_def *def, const uint8_t *body, size_t n)
{
    struct value vals[MAX_KEY + 1];
    static const uint8_t swaps[] = { 0x00, 0x01, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x3f, 0x5f,
                                     0x61, 0x78, 0x7f, 0x9f, 0xa1, 0xbf, 0xc1, 0xdf, 0xf5, 0xff };
    uint8_t copy[256];
    for (size_t k = 0; k < n; k++)
        if (decode_body(def, guarded(body, k), k, vals) != -LINK_BAD_CBOR) return (int)k;
    memcpy(copy, body, n);
    copy[n] = 0x00;                                   /* one byte after the map */
    if (decode_body(def, guarded(copy, n + 1), n + 1, vals) != -LINK_BAD_CBOR) return (int)n + 1;
    for (size_t i = 0; i < n; i++) {
        for (size_t s = 0; s < sizeof swaps; s++) {
            memcpy(copy, body, n);
            copy[i] = swaps[s];
            (void)decode_body(def, guarded(copy, n), n, vals);
        }
    }
    return -1;
}

void on_block(uint8_t *block, size_t n)
{
    const struct message_def *def = NULL;
    struct value vals[MAX_KEY + 1];
    int len = frame_check(block, n);                                         /* steps 1-4 */
    if (len < 0) { word(error_name(-len)); return; }
    for (size_t i = 0; i < sizeof messages / sizeof messages[0]; i++)
        if (messages[i].type == block[3]) def = &messages[i];
    if (def == NULL) { word("LINK_UNKNOWN_TYPE"); return; }                 /* step 5 */
    const uint8_t *body = block + 5;
    size_t body_len = (size_t)len - 9;
    if (def->type == 0x01) {                                                 /* step 6 */
        if (body_len != 0) { word("LINK_BAD_HEADER"); return; }
    } else {
        int err = decode_body(def, guarded(body, body_len), body_len, vals); /* steps 7-8 */
        if (err) { word(error_name(-err)); return; }
        int bad = abuse(def, body, body_len);
        if (bad >= 0) { char w[40]; sprintf(w, "NOT_BAD_CBOR_AT_LENGTH:%d", bad); word(w); return; }
        (void)decode_body(def, guarded(body, body_len), body_len, vals);     /* texts point here */
    }
    ok_word(def, block, vals);
}

/* ---- commands -------------------------------------------------------------------------- */

static int nibble(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static size_t parse_hex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (n < cap && nibble(s[0]) >= 0 && nibble(s[1]) >= 0) {
        out[n++] = (uint8_t)(nibble(s[0]) << 4 | nibble(s[1]));
        s += 2;
    }
    return n;
}

int main(void)
{
    static char line[8192];
    static uint8_t bytes[4096], out[4096];
    guard_init();
    while (fgets(line, sizeof line, stdin) != NULL) {
        char *arg = strchr(line, ' ');
        size_t n = arg ? parse_hex(arg + 1, bytes, sizeof bytes) : 0;
        if (strncmp(line, "crc ", 4) == 0) {
            printf("%08lx", (unsigned long)crc32c(guarded(bytes, n), n));
        } else if (strncmp(line, "cobs ", 5) == 0) {
            put_hex(out, cobs_encode(guarded(bytes, n), n, out));
        } else if (strncmp(line, "uncobs ", 7) == 0) {
            int len = cobs_decode(guarded(bytes, n), n, out);
            if (len < 0) printf("LINK_BAD_COBS"); else put_hex(out, (size_t)len);
        } else if (strncmp(line, "put ", 4) == 0) {
            unsigned major;
            unsigned long v;
            if (sscanf(line + 4, "%u %lu", &major, &v) != 2 || major > 7 || v > 0xFFFFFFFFul) printf("BAD_COMMAND");
            else put_hex(out, (size_t)(cbor_put(out, (uint8_t)major, (uint32_t)v) - out));
        } else if (strncmp(line, "skip ", 5) == 0) {
            const uint8_t *p = guarded(bytes, n);
            const uint8_t *start = p;
            if (cbor_skip(&p, start + n, 0) == 0) printf("ok:%d", (int)(p - start)); else printf("fail");
        } else if (strncmp(line, "wire ", 5) == 0) {
            first_word = true;
            for (size_t i = 0; i < n; i++) rx_byte(bytes[i]);
        } else {
            printf("BAD_COMMAND");
        }
        printf("\n");
    }
    return 0;
}
