/* Log filter in C with weft.h: `errors` keeps the JSON-lines records whose top-level "level" is
 * the string "error", and `service_msg` turns each into (service, msg), both as written between
 * their quotes. The host has checked every line is one JSON value, so the UDFs only walk the
 * top-level object as far as the member they need. Build: `weft udf build examples/logfilter/c`. */
#include "weft.h"

typedef struct {
  const uint8_t *p;
  uint32_t at, len;
} scanner;

static inline void skip_space(scanner *s) {
  while (s->at < s->len &&
         (s->p[s->at] == ' ' || s->p[s->at] == '\t' || s->p[s->at] == '\n' || s->p[s->at] == '\r'))
    s->at++;
}

/* A string at the cursor: its bytes between the quotes, escapes as written. */
static int string(scanner *s, weft_bytes *out) {
  skip_space(s);
  if (s->at >= s->len || s->p[s->at] != '"') return 0;
  uint32_t start = ++s->at;
  while (s->at < s->len) {
    uint8_t b = s->p[s->at];
    if (b == '\\') {
      s->at += 2;
    } else if (b == '"') {
      *out = (weft_bytes){s->p + start, s->at - start};
      s->at++;
      return 1;
    } else {
      s->at++;
    }
  }
  return 0;
}

/* Skips any value: a string, an object or array with what is nested in it, or a scalar. */
static int skip_value(scanner *s) {
  weft_bytes ignored;
  skip_space(s);
  if (s->at >= s->len) return 0;
  uint8_t b = s->p[s->at];
  if (b == '"') return string(s, &ignored);
  if (b == '{' || b == '[') {
    uint32_t depth = 0;
    while (s->at < s->len) {
      b = s->p[s->at];
      if (b == '"') {
        if (!string(s, &ignored)) return 0;
        continue;
      }
      if (b == '{' || b == '[') depth++;
      if ((b == '}' || b == ']') && --depth == 0) {
        s->at++;
        return 1;
      }
      s->at++;
    }
    return 0;
  }
  uint32_t start = s->at;
  while (s->at < s->len) {
    b = s->p[s->at];
    if (b == ',' || b == '}' || b == ']' || b == ' ' || b == '\t' || b == '\n' || b == '\r') break;
    s->at++;
  }
  return s->at > start;
}

/* The top-level member `name`: 1 and its bytes if it is a string, 2 if another value, 0 if the
 * line is not an object or has no such member. */
static int member(weft_bytes line, const char *name, weft_bytes *value) {
  scanner s = {line.ptr, 0, line.len};
  skip_space(&s);
  if (s.at >= s.len || s.p[s.at] != '{') return 0;
  s.at++;
  skip_space(&s);
  if (s.at < s.len && s.p[s.at] == '}') return 0;
  for (;;) {
    weft_bytes key;
    if (!string(&s, &key)) return 0;
    skip_space(&s);
    if (s.at >= s.len || s.p[s.at] != ':') return 0;
    s.at++;
    skip_space(&s);
    if (weft_eq(key, name)) {
      if (s.at < s.len && s.p[s.at] == '"') return string(&s, value) ? 1 : 0;
      return 2;
    }
    if (!skip_value(&s)) return 0;
    skip_space(&s);
    if (s.at >= s.len || s.p[s.at] != ',') return 0;
    s.at++;
  }
}

static int errors(weft_bytes key, weft_bytes line) {
  (void)key;
  weft_bytes level;
  return member(line, "level", &level) == 1 && weft_eq(level, "error");
}

static int service_msg(weft_bytes key, weft_bytes line) {
  (void)key;
  weft_bytes service, msg;
  if (member(line, "service", &service) != 1)
    return weft_fail_with("the record has no string member \"service\":", line);
  if (member(line, "msg", &msg) != 1)
    return weft_fail_with("the record has no string member \"msg\":", line);
  return weft_emit(service, msg);
}

WEFT_FILTER_NO_KEY(errors, errors)
WEFT_MAP_NO_KEY(service_msg, service_msg)
