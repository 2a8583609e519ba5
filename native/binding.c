/*
 * The one N-API file: argument checks, errors, the uv_poll bridge and exports.
 * Byte work and syscalls live in the pure C core (weft.h). Each batch call checks
 * its arrays once, then the core runs the whole batch without calling back into JS.
 */
#include <malloc.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "weft.h"

/* Every napi_* call goes through NAPI(): on failure throw (unless JS already threw)
 * and return 0, which is NULL for napi_value and false for the bool helpers. */
#define NAPI(env, call)                     \
  do {                                      \
    if ((call) != napi_ok) {                \
      napi_failed((env), #call);            \
      return 0;                             \
    }                                       \
  } while (0)

static void napi_failed(napi_env env, const char *call) {
  bool pending = false;
  const napi_extended_error_info *info = NULL;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  napi_get_last_error_info(env, &info);
  char msg[256];
  snprintf(msg, sizeof msg, "%s failed: %s", call, info && info->error_message ? info->error_message : "napi error");
  napi_throw_error(env, "WEFT_ERR_NATIVE", msg);
}

/* Set a string property; used only while building an error, so failures are ignored. */
static void set_str(napi_env env, napi_value obj, const char *key, const char *val) {
  napi_value v;
  if (napi_create_string_utf8(env, val, NAPI_AUTO_LENGTH, &v) == napi_ok) napi_set_named_property(env, obj, key, v);
}

/* Throw like Node's own syscall errors: code = errno name, errno (negative), syscall. */
static napi_value throw_sys(napi_env env, int err, const char *syscall, const char *arg) {
  char msg[256];
  napi_value code, text, error, num;
  snprintf(msg, sizeof msg, "%s %s: %s", syscall, arg, uv_strerror(-err));
  NAPI(env, napi_create_string_utf8(env, uv_err_name(-err), NAPI_AUTO_LENGTH, &code));
  NAPI(env, napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text));
  NAPI(env, napi_create_error(env, code, text, &error));
  NAPI(env, napi_create_int32(env, -err, &num));
  NAPI(env, napi_set_named_property(env, error, "errno", num));
  set_str(env, error, "syscall", syscall);
  NAPI(env, napi_throw(env, error));
  return NULL;
}

static napi_value throw_weft(napi_env env, const weft_err *e, const char *arg) {
  return throw_sys(env, e->code, e->syscall, arg);
}

/* A failed call on an fd names it: "recvmmsg fd 12: ...". */
static napi_value throw_fd(napi_env env, int err, const char *syscall, int fd) {
  char arg[32];
  snprintf(arg, sizeof arg, "fd %d", fd);
  return throw_sys(env, err, syscall, arg);
}

/* Argument errors name the argument, with Node's codes. */
static bool arg_fail(napi_env env, bool range, const char *name, const char *want) {
  char msg[160];
  snprintf(msg, sizeof msg, "argument '%s' %s", name, want);
  if (range) napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  else napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return false;
}

static bool args_get(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  NAPI(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < want) {
    char msg[80];
    snprintf(msg, sizeof msg, "expected %zu arguments, got %zu", want, argc);
    napi_throw_type_error(env, "ERR_MISSING_ARGS", msg);
    return false;
  }
  return true;
}

static bool arg_type(napi_env env, napi_value v, napi_valuetype want, const char *name, const char *what) {
  napi_valuetype t;
  NAPI(env, napi_typeof(env, v, &t));
  return t == want || arg_fail(env, false, name, what);
}

static bool arg_i32(napi_env env, napi_value v, const char *name, int32_t lo, int32_t hi, int32_t *out) {
  double d;
  if (!arg_type(env, v, napi_number, name, "must be a number")) return false;
  NAPI(env, napi_get_value_double(env, v, &d));
  if (!(d >= lo && d <= hi) || d != (double)(int32_t)d) return arg_fail(env, true, name, "is out of range");
  *out = (int32_t)d;
  return true;
}

static bool arg_u32(napi_env env, napi_value v, const char *name, uint32_t hi, uint32_t *out) {
  double d;
  if (!arg_type(env, v, napi_number, name, "must be a number")) return false;
  NAPI(env, napi_get_value_double(env, v, &d));
  if (!(d >= 0 && d <= hi) || d != (double)(uint32_t)d) return arg_fail(env, true, name, "is out of range");
  *out = (uint32_t)d;
  return true;
}

static bool arg_fd(napi_env env, napi_value v, const char *name, int *out) {
  int32_t fd;
  if (!arg_i32(env, v, name, 0, INT32_MAX, &fd)) return false;
  *out = fd;
  return true;
}

static bool arg_bool(napi_env env, napi_value v, const char *name, bool *out) {
  if (!arg_type(env, v, napi_boolean, name, "must be a boolean")) return false;
  NAPI(env, napi_get_value_bool(env, v, out));
  return true;
}

static bool arg_str(napi_env env, napi_value v, const char *name, char *buf, size_t cap) {
  size_t n;
  if (!arg_type(env, v, napi_string, name, "must be a string")) return false;
  NAPI(env, napi_get_value_string_utf8(env, v, NULL, 0, &n));
  if (n >= cap) return arg_fail(env, true, name, "is too long");
  NAPI(env, napi_get_value_string_utf8(env, v, buf, cap, &n));
  return true;
}

/* A typed array of the wanted kind with at least min elements (Buffer is a Uint8Array). */
static bool arg_typed(napi_env env, napi_value v, const char *name, napi_typedarray_type want, const char *what,
                      size_t min, void **data, size_t *length) {
  bool is = false;
  napi_typedarray_type t;
  napi_value ab;
  size_t n, byte_off;
  void *p;
  NAPI(env, napi_is_typedarray(env, v, &is));
  if (!is) return arg_fail(env, false, name, what);
  NAPI(env, napi_get_typedarray_info(env, v, &t, &n, &p, &ab, &byte_off));
  if (t != want) return arg_fail(env, false, name, what);
  if (n < min) {
    char msg[96];
    snprintf(msg, sizeof msg, "must hold at least %zu elements (has %zu)", min, n);
    return arg_fail(env, true, name, msg);
  }
  *data = p;
  if (length) *length = n;
  return true;
}

#define ARG_U8(env, v, name, min, d, l) \
  arg_typed(env, v, name, napi_uint8_array, "must be a Buffer", min, (void **)(d), l)
#define ARG_I32A(env, v, name, min, d) \
  arg_typed(env, v, name, napi_int32_array, "must be an Int32Array", min, (void **)(d), NULL)
#define ARG_U32A(env, v, name, min, d) \
  arg_typed(env, v, name, napi_uint32_array, "must be a Uint32Array", min, (void **)(d), NULL)
#define ARG_COUNTERS(env, v, d)                                                                          \
  arg_typed(env, v, "counters", napi_float64_array, "must be a Float64Array(COUNTER_COUNT)", WEFT_COUNTER_COUNT, \
            (void **)(d), NULL)

static bool arg_encap(napi_env env, napi_value v, const weft_encap_ops **ops) {
  int32_t id;
  if (!arg_i32(env, v, "encap", 0, WEFT_ENCAP_COUNT - 1, &id)) return false;
  *ops = weft_encap_get(id);
  return true;
}

/* slots * slotSize must fit the slab and an Int32 offset. */
static bool check_slab(napi_env env, size_t slab_len, int32_t slots, int32_t slot_size) {
  size_t need = (size_t)slots * (size_t)slot_size;
  if (need > INT32_MAX) return arg_fail(env, true, "slab", "is larger than Int32 offsets allow");
  if (need > slab_len) return arg_fail(env, true, "slab", "is smaller than count * slotSize");
  return true;
}

static napi_value ret_i32(napi_env env, int32_t v) {
  napi_value r;
  NAPI(env, napi_create_int32(env, v, &r));
  return r;
}

static napi_value ret_bool(napi_env env, bool v) {
  napi_value r;
  NAPI(env, napi_get_boolean(env, v, &r));
  return r;
}

static napi_value ret_undefined(napi_env env) {
  napi_value r;
  NAPI(env, napi_get_undefined(env, &r));
  return r;
}

/* The tail of the calls on fd that return a count or an index: negative means e holds the error. */
static napi_value ret_or_throw(napi_env env, int32_t n, const weft_err *e, int fd) {
  return n < 0 ? throw_fd(env, e->code, e->syscall, fd) : ret_i32(env, n);
}

/* ---- 1. TUN device and links ---- */

static napi_value js_tun_open(napi_env env, napi_callback_info info) {
  napi_value argv[2], obj, v;
  char name[64], out[64];
  int32_t flags;
  weft_err e;
  if (!args_get(env, info, 2, argv) || !arg_str(env, argv[0], "name", name, sizeof name) ||
      !arg_i32(env, argv[1], "flags", 0, WEFT_TUN_MULTI_QUEUE | WEFT_TUN_VNET_HDR | WEFT_TUN_NAPI, &flags))
    return NULL;
  int fd = weft_tun_open(name, flags, out, sizeof out, &e);
  if (fd < 0) return throw_weft(env, &e, name[0] ? name : "(kernel-named)");
  NAPI(env, napi_create_object(env, &obj));
  NAPI(env, napi_create_int32(env, fd, &v));
  NAPI(env, napi_set_named_property(env, obj, "fd", v));
  NAPI(env, napi_create_string_utf8(env, out, NAPI_AUTO_LENGTH, &v));
  NAPI(env, napi_set_named_property(env, obj, "name", v));
  return obj;
}

static napi_value js_link_set(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char name[64];
  int32_t mtu;
  bool up;
  weft_err e;
  if (!args_get(env, info, 3, argv) || !arg_str(env, argv[0], "name", name, sizeof name) ||
      !arg_i32(env, argv[1], "mtu", 0, 65535, &mtu) || !arg_bool(env, argv[2], "up", &up))
    return NULL;
  if (weft_link_set(name, mtu, up, &e) < 0) return throw_weft(env, &e, name);
  return ret_undefined(env);
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  weft_err e;
  if (!args_get(env, info, 1, argv) || !arg_fd(env, argv[0], "fd", &fd)) return NULL;
  if (weft_close(fd, &e) < 0) return throw_fd(env, e.code, e.syscall, fd);
  return ret_undefined(env);
}

/* ---- 2. UDP socket ---- */

static napi_value js_udp_open(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char addr[64], arg[96];
  int32_t port, buf;
  bool reuse;
  weft_err e;
  if (!args_get(env, info, 4, argv) || !arg_str(env, argv[0], "bindAddr", addr, sizeof addr) ||
      !arg_i32(env, argv[1], "port", 0, 65535, &port) || !arg_i32(env, argv[2], "bufBytes", 0, INT32_MAX, &buf) ||
      !arg_bool(env, argv[3], "reusePort", &reuse))
    return NULL;
  int fd = weft_udp_open(addr, port, buf, reuse, &e);
  if (fd < 0) {
    snprintf(arg, sizeof arg, "%s:%d", addr, port);
    return throw_weft(env, &e, arg);
  }
  return ret_i32(env, fd);
}

static napi_value js_udp_steer_by_inner_flow(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int fd;
  int32_t off, queues;
  bool geneve;
  weft_err e;
  if (!args_get(env, info, 4, argv) || !arg_fd(env, argv[0], "fd", &fd) ||
      !arg_i32(env, argv[1], "innerOffset", 0, 255, &off) || !arg_bool(env, argv[2], "geneve", &geneve) ||
      !arg_i32(env, argv[3], "queues", 1, 256, &queues))
    return NULL;
  if (weft_udp_steer_by_inner_flow(fd, off, geneve, queues, &e) < 0) return throw_fd(env, e.code, e.syscall, fd);
  return ret_undefined(env);
}

static napi_value js_udp_local_port(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  weft_err e;
  if (!args_get(env, info, 1, argv) || !arg_fd(env, argv[0], "fd", &fd)) return NULL;
  return ret_or_throw(env, weft_udp_local_port(fd, &e), &e, fd);
}

/* udpSendTo(fd, buf, addr, port, counters): one datagram; bytes sent, 0 when the socket buffer was full. */
static napi_value js_udp_send_to(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int fd;
  uint8_t *buf;
  size_t len;
  uint32_t addr, port;
  double *counters;
  weft_err e;
  if (!args_get(env, info, 5, argv) || !arg_fd(env, argv[0], "fd", &fd) ||
      !ARG_U8(env, argv[1], "buf", 1, &buf, &len) ||
      !arg_u32(env, argv[2], "addr", UINT32_MAX, &addr) || !arg_u32(env, argv[3], "port", 65535, &port) ||
      !ARG_COUNTERS(env, argv[4], &counters))
    return NULL;
  if (len > WEFT_MAX_DATAGRAM) return arg_fail(env, true, "buf", "is longer than a datagram"), NULL;
  return ret_or_throw(env, weft_udp_send_to(fd, buf, len, addr, (uint16_t)port, counters, &e), &e, fd);
}

/* ---- 3. Event loop: uv_poll on the main loop ---- */

typedef struct {
  uv_poll_t poll; /* first: the uv handle pointer is the struct pointer */
  napi_env env;
  napi_ref cb;
  napi_async_context ctx;
  /* A worker thread that ends (terminate(), an uncaught error) closes its loop: a handle still open there aborts
   * the whole process (node::CheckedUvLoopClose). This hook closes it first; the close callback says it is done. */
  napi_async_cleanup_hook_handle cleanup;
  int fd;
  bool closing, closed, finalized;
} weft_poll;

/* Freed only when both libuv (close callback) and JS (external finalizer) let go. */
static void poll_on_close(uv_handle_t *h) {
  weft_poll *p = (weft_poll *)h;
  if (p->cleanup) napi_remove_async_cleanup_hook(p->cleanup);
  p->cleanup = NULL;
  p->closed = true;
  if (p->finalized) free(p);
}

/* The environment is going away with the poll still open: close the uv handle (the JS side is gone with it). */
static void poll_on_env_cleanup(napi_async_cleanup_hook_handle handle, void *arg) {
  (void)handle;
  weft_poll *p = arg;
  if (p->closing) return; /* pollStop closed it; its close callback removes the hook */
  p->closing = true;
  uv_poll_stop(&p->poll);
  uv_close((uv_handle_t *)&p->poll, poll_on_close);
}

static void poll_finalize(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  weft_poll *p = data;
  p->finalized = true;
  if (p->closed) free(p);
}

static void poll_call(weft_poll *p, int value) {
  napi_env env = p->env;
  napi_handle_scope scope;
  napi_value cb, recv, arg, result;
  if (napi_open_handle_scope(env, &scope) != napi_ok) {
    napi_fatal_error("weft poll", NAPI_AUTO_LENGTH, "napi_open_handle_scope failed", NAPI_AUTO_LENGTH);
  }
  /* napi_make_callback runs the callback like an I/O event: nextTicks and microtasks after it. */
  napi_status s = napi_get_reference_value(env, p->cb, &cb);
  if (s == napi_ok) s = napi_get_global(env, &recv); /* make_callback needs an object receiver */
  if (s == napi_ok) s = napi_create_int32(env, value, &arg);
  if (s == napi_ok) s = napi_make_callback(env, p->ctx, recv, cb, 1, &arg, &result);
  if (s != napi_ok) {
    /* A throw in the callback must surface as 'uncaughtException', not vanish. */
    bool pending = false;
    napi_value exc;
    napi_is_exception_pending(env, &pending);
    if (pending && napi_get_and_clear_last_exception(env, &exc) == napi_ok) {
      napi_fatal_exception(env, exc);
    } else if (!pending) {
      napi_failed(env, "poll callback");
      if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void poll_on_event(uv_poll_t *h, int status, int events) {
  weft_poll *p = (weft_poll *)h;
  if (p->closing) return;
  /* On error pass the negative errno: JS's next syscall on the fd reports it. */
  poll_call(p, status < 0 ? status : events & (UV_READABLE | UV_WRITABLE));
}

static bool arg_events(napi_env env, napi_value v, int *out) {
  int32_t ev;
  if (!arg_i32(env, v, "events", 0, UV_READABLE | UV_WRITABLE, &ev)) return false;
  *out = ev;
  return true;
}

static bool arg_poll(napi_env env, napi_value v, weft_poll **out) {
  void *data;
  if (!arg_type(env, v, napi_external, "handle", "must be a PollHandle from pollStart")) return false;
  NAPI(env, napi_get_value_external(env, v, &data));
  *out = data;
  return true;
}

static napi_value js_poll_start(napi_env env, napi_callback_info info) {
  napi_value argv[3], ext, name;
  int fd, events, r;
  uv_loop_t *loop;
  if (!args_get(env, info, 3, argv) || !arg_fd(env, argv[0], "fd", &fd) || !arg_events(env, argv[1], &events) ||
      !arg_type(env, argv[2], napi_function, "cb", "must be a function"))
    return NULL;
  NAPI(env, napi_get_uv_event_loop(env, &loop));
  weft_poll *p = calloc(1, sizeof *p);
  if (!p) return throw_sys(env, ENOMEM, "calloc", "poll handle");
  p->env = env;
  p->fd = fd;
  if ((r = uv_poll_init(loop, &p->poll, fd)) < 0) {
    free(p);
    return throw_fd(env, -r, "uv_poll_init", fd);
  }
  /* From here the handle is live: errors close it and free through the close callback. */
  p->finalized = true;
  if ((r = events ? uv_poll_start(&p->poll, events, poll_on_event) : 0) < 0) {
    p->closing = true;
    uv_close((uv_handle_t *)&p->poll, poll_on_close);
    return throw_fd(env, -r, "uv_poll_start", fd);
  }
  if (napi_create_reference(env, argv[2], 1, &p->cb) != napi_ok ||
      napi_create_string_utf8(env, "weft.poll", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &p->ctx) != napi_ok ||
      napi_add_async_cleanup_hook(env, poll_on_env_cleanup, p, &p->cleanup) != napi_ok ||
      napi_create_external(env, p, poll_finalize, NULL, &ext) != napi_ok) {
    napi_failed(env, "pollStart setup");
    if (p->cb) napi_delete_reference(env, p->cb);
    if (p->ctx) napi_async_destroy(env, p->ctx);
    p->closing = true;
    uv_close((uv_handle_t *)&p->poll, poll_on_close);
    return NULL;
  }
  p->finalized = false; /* now JS owns one half of the lifetime */
  return ext;
}

static napi_value js_poll_update(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  weft_poll *p;
  int events, r;
  if (!args_get(env, info, 2, argv) || !arg_poll(env, argv[0], &p) || !arg_events(env, argv[1], &events))
    return NULL;
  if (p->closing) return throw_sys(env, EBADF, "uv_poll_start", "stopped PollHandle");
  r = events ? uv_poll_start(&p->poll, events, poll_on_event) : uv_poll_stop(&p->poll);
  if (r < 0) return throw_fd(env, -r, "uv_poll_start", p->fd);
  return ret_undefined(env);
}

static napi_value js_poll_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  weft_poll *p;
  if (!args_get(env, info, 1, argv) || !arg_poll(env, argv[0], &p)) return NULL;
  if (p->closing) return ret_undefined(env); /* second stop is a no-op */
  p->closing = true;
  uv_poll_stop(&p->poll);
  uv_close((uv_handle_t *)&p->poll, poll_on_close);
  NAPI(env, napi_delete_reference(env, p->cb));
  NAPI(env, napi_async_destroy(env, p->ctx));
  return ret_undefined(env);
}

/* A Buffer (argv[0]) and a span in it: offset argv[1] >= off_min, length argv[2] >= len_min, named as given. */
typedef struct {
  uint8_t *buf;
  size_t cap;
  int32_t off, len;
} buf_span;

static bool arg_buf_span(napi_env env, const napi_value *argv, const char *buf_name, const char *off_name,
                         int32_t off_min, const char *len_name, int32_t len_min, buf_span *s) {
  return ARG_U8(env, argv[0], buf_name, 0, &s->buf, &s->cap) &&
         arg_i32(env, argv[1], off_name, off_min, INT32_MAX, &s->off) &&
         arg_i32(env, argv[2], len_name, len_min, INT32_MAX, &s->len) &&
         ((size_t)s->off + (size_t)s->len <= s->cap || arg_fail(env, true, "off + len", "exceeds the buffer"));
}

/* ---- 4. The queue: one TUN fd and one socket, both directions' memory registered once ---- */

/* What JS holds: the queue and strong references to every buffer C points into, so none is collected or moved
 * while C may touch it. Used only on the thread that opened it. */
typedef struct {
  weft_queue q;
  napi_ref refs[20];
  int nrefs;
  napi_ref peers_ref;
  bool closed;
} js_queue;

static void queue_release(napi_env env, js_queue *j) {
  for (int i = 0; i < j->nrefs; i++) napi_delete_reference(env, j->refs[i]);
  j->nrefs = 0;
  if (j->peers_ref) napi_delete_reference(env, j->peers_ref);
  j->peers_ref = NULL;
  weft_queue_free(&j->q);
  j->closed = true;
}

static void queue_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  js_queue *j = data;
  if (!j->closed) queue_release(env, j);
  free(j);
}

/* spec[name] (undefined when absent). */
static bool prop(napi_env env, napi_value obj, const char *name, napi_value *v) {
  NAPI(env, napi_get_named_property(env, obj, name, v));
  return true;
}

static bool absent(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && (t == napi_undefined || t == napi_null);
}

/* A typed array property of the spec, kept alive by the queue. min: elements at least. */
static bool spec_typed(napi_env env, js_queue *j, napi_value spec, const char *name, napi_typedarray_type want,
                       const char *what, size_t min, void **data, size_t *length) {
  napi_value v;
  if (!prop(env, spec, name, &v) || !arg_typed(env, v, name, want, what, min, data, length)) return false;
  if (j->nrefs >= (int)(sizeof j->refs / sizeof j->refs[0])) return arg_fail(env, true, name, "is one buffer too many");
  NAPI(env, napi_create_reference(env, v, 1, &j->refs[j->nrefs]));
  j->nrefs++;
  return true;
}

static bool spec_i32(napi_env env, napi_value spec, const char *name, int32_t lo, int32_t hi, int32_t *out) {
  napi_value v;
  return prop(env, spec, name, &v) && arg_i32(env, v, name, lo, hi, out);
}

static bool spec_bool(napi_env env, napi_value spec, const char *name, int *out) {
  napi_value v;
  bool b;
  if (!prop(env, spec, name, &v) || !arg_bool(env, v, name, &b)) return false;
  *out = b;
  return true;
}

#define SPEC_I32A(name, min, d) \
  spec_typed(env, j, spec, name, napi_int32_array, "must be an Int32Array", min, (void **)(d), &n)
#define SPEC_U32A(name, min, d) \
  spec_typed(env, j, spec, name, napi_uint32_array, "must be a Uint32Array", min, (void **)(d), &n)

/* The outbound half: outSlab, outLen, outOff, outPeer (outLen's length is the slot count). */
static bool spec_out(napi_env env, js_queue *j, napi_value spec) {
  weft_queue *q = &j->q;
  size_t n, slab_len;
  if (!SPEC_I32A("outLen", 1, &q->out_len)) return false;
  q->out_slots = (int32_t)(n > 4096 ? 4096 : n);
  if (!SPEC_I32A("outOff", (size_t)q->out_slots, &q->out_off) ||
      !SPEC_I32A("outPeer", (size_t)q->out_slots, &q->out_peer) ||
      !spec_typed(env, j, spec, "outSlab", napi_uint8_array, "must be a Buffer", 0, (void **)&q->out_slab, &slab_len))
    return false;
  return check_slab(env, slab_len, q->out_slots, q->slot_size);
}

/* The inbound half: inSlab, inLen, inAddr, inAddr6 (optional: 16 bytes per slot, with sock6Fd), inPort (optional:
 * source ports), inGso (offload tier), segOff, segLen, segAddr. */
static bool spec_in(napi_env env, js_queue *j, napi_value spec) {
  weft_queue *q = &j->q;
  size_t n, slab_len;
  napi_value gso, port, addr6;
  if (!SPEC_I32A("inLen", 1, &q->in_len)) return false;
  q->in_slots = (int32_t)(n > 4096 ? 4096 : n);
  if (!SPEC_U32A("inAddr", (size_t)q->in_slots, &q->in_addr) || !prop(env, spec, "inAddr6", &addr6) ||
      (!absent(env, addr6) && !spec_typed(env, j, spec, "inAddr6", napi_uint8_array, "must be a Buffer",
                                          (size_t)q->in_slots * 16, (void **)&q->in_addr6, NULL)) ||
      !prop(env, spec, "inPort", &port) ||
      (!absent(env, port) && !SPEC_U32A("inPort", (size_t)q->in_slots, &q->in_port)) ||
      !prop(env, spec, "inGso", &gso) ||
      (!absent(env, gso) && !SPEC_I32A("inGso", (size_t)q->in_slots, &q->in_gso)) ||
      !SPEC_I32A("segOff", (size_t)q->in_slots, &q->seg_off))
    return false;
  q->seg_max = (int32_t)(n > INT32_MAX ? INT32_MAX : n);
  if (!SPEC_I32A("segLen", (size_t)q->seg_max, &q->seg_len) ||
      !SPEC_U32A("segAddr", (size_t)q->seg_max, &q->seg_addr) ||
      !spec_typed(env, j, spec, "inSlab", napi_uint8_array, "must be a Buffer", 0, (void **)&q->in_slab, &slab_len))
    return false;
  return check_slab(env, slab_len, q->in_slots, q->slot_size);
}

/* queueOpen(spec): fds, encap, local side, TUN MTU, offload switches and the memory of either or both directions
 * (a direction whose slab is absent is not opened). Every size is checked here, once. */
static napi_value js_queue_open(napi_env env, napi_callback_info info) {
  napi_value argv[1], ext;
  int32_t id, vni;
  uint8_t *mac;
  double *counters;
  size_t n;
  weft_err e;
  if (!args_get(env, info, 1, argv) || !arg_type(env, argv[0], napi_object, "spec", "must be an object")) return NULL;
  napi_value spec = argv[0];
  js_queue *j = calloc(1, sizeof *j);
  if (!j) return throw_sys(env, ENOMEM, "calloc", "queue");
  weft_queue *q = &j->q;
  napi_value out_slab, in_slab, seg_overhead, sock6, mac6_v;
  uint8_t *mac6 = NULL;
  q->sock6_fd = -1;
  bool ok = spec_i32(env, spec, "tunFd", -1, INT32_MAX, &q->tun_fd) &&
            spec_i32(env, spec, "sockFd", -1, INT32_MAX, &q->sock_fd) && prop(env, spec, "sock6Fd", &sock6) &&
            (absent(env, sock6) || arg_i32(env, sock6, "sock6Fd", -1, INT32_MAX, &q->sock6_fd)) &&
            prop(env, spec, "localMac6", &mac6_v) &&
            (absent(env, mac6_v) ||
             spec_typed(env, j, spec, "localMac6", napi_uint8_array, "must be a Buffer", 6, (void **)&mac6, NULL)) &&
            spec_i32(env, spec, "encap", -1, WEFT_ENCAP_COUNT - 1, &id) &&
            spec_i32(env, spec, "vni", 0, 0xffffff, &vni) && spec_i32(env, spec, "mtu", 0, 65535, &q->mtu) &&
            spec_bool(env, spec, "vnet", &q->vnet) && spec_bool(env, spec, "gro", &q->gro) &&
            spec_bool(env, spec, "udpSegment", &q->udp_segment) &&
            spec_typed(env, j, spec, "localMac", napi_uint8_array, "must be a Buffer", 6, (void **)&mac, NULL) &&
            spec_typed(env, j, spec, "counters", napi_float64_array, "must be a Float64Array(COUNTER_COUNT)",
                       WEFT_COUNTER_COUNT, (void **)&counters, &n) &&
            prop(env, spec, "outSlab", &out_slab) && prop(env, spec, "inSlab", &in_slab) &&
            prop(env, spec, "segOverhead", &seg_overhead) &&
            (absent(env, seg_overhead) || arg_i32(env, seg_overhead, "segOverhead", 0, 64, &q->seg_overhead));
  if (ok) {
    q->ops = id < 0 ? NULL : weft_encap_get(id); /* -1: a TypeScript encap writes and reads the headers */
    q->vni = (uint32_t)vni;
    memcpy(q->local_mac, mac, 6);
    memcpy(q->local_mac6, mac6 ? mac6 : mac, 6);
    q->counters = counters;
    q->slot_size = WEFT_SLOT_SIZE;
    if (q->vnet && q->mtu < 68) ok = arg_fail(env, true, "mtu", "must be at least 68 with vnet");
    if (ok && q->vnet && !q->ops) ok = arg_fail(env, true, "encap", "must be native with vnet");
  }
  if (ok && !absent(env, out_slab)) ok = spec_out(env, j, spec);
  if (ok && !absent(env, in_slab)) ok = spec_in(env, j, spec);
  if (ok && q->sock6_fd >= 0 && !absent(env, in_slab) && !q->in_addr6)
    ok = arg_fail(env, true, "inAddr6", "is needed with sock6Fd");
  if (ok && weft_queue_init(q, &e) < 0) {
    throw_weft(env, &e, "queue");
    ok = false;
  }
  if (ok && napi_create_external(env, j, queue_finalize, NULL, &ext) != napi_ok) {
    napi_failed(env, "queueOpen");
    ok = false;
  }
  if (!ok) {
    queue_release(env, j);
    free(j);
    return NULL;
  }
  return ext;
}

static bool arg_queue(napi_env env, napi_value v, js_queue **out) {
  void *data;
  if (!arg_type(env, v, napi_external, "queue", "must be a Queue from queueOpen")) return false;
  NAPI(env, napi_get_value_external(env, v, &data));
  *out = data;
  if ((*out)->closed) {
    throw_sys(env, EBADF, "queue", "closed queue");
    return false;
  }
  return true;
}

/* (queue) or (queue, n) with 0 <= n <= max. */
static bool args_queue_n(napi_env env, napi_callback_info info, size_t argc, js_queue **j, int32_t max, int32_t *n) {
  napi_value argv[2];
  if (!args_get(env, info, argc, argv) || !arg_queue(env, argv[0], j)) return false;
  return argc < 2 || arg_i32(env, argv[1], "n", 0, max, n);
}

static napi_value js_queue_set_peers(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  js_queue *j;
  uint8_t *table;
  size_t n;
  napi_ref ref;
  if (!args_get(env, info, 2, argv) || !arg_queue(env, argv[0], &j) ||
      !ARG_U8(env, argv[1], "peerTable", 0, &table, &n))
    return NULL;
  NAPI(env, napi_create_reference(env, argv[1], 1, &ref));
  if (j->peers_ref) napi_delete_reference(env, j->peers_ref);
  j->peers_ref = ref;
  j->q.peers = table;
  j->q.peer_count = (int32_t)(n / WEFT_PEER_RECORD_SIZE);
  return ret_undefined(env);
}

static napi_value js_queue_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void *data;
  if (!args_get(env, info, 1, argv) || !arg_type(env, argv[0], napi_external, "queue", "must be a Queue")) return NULL;
  NAPI(env, napi_get_value_external(env, argv[0], &data));
  js_queue *j = data;
  if (!j->closed) queue_release(env, j);
  return ret_undefined(env);
}

static napi_value js_queue_udp_segment(napi_env env, napi_callback_info info) {
  js_queue *j;
  if (!args_queue_n(env, info, 1, &j, 0, NULL)) return NULL;
  return ret_bool(env, j->q.udp_segment != 0);
}

static bool has_out(napi_env env, js_queue *j) {
  return j->q.out_slots > 0 || arg_fail(env, false, "queue", "has no outbound half");
}
static bool has_in(napi_env env, js_queue *j) {
  return j->q.in_slots > 0 || arg_fail(env, false, "queue", "has no inbound half");
}

static napi_value js_out_read(napi_env env, napi_callback_info info) {
  js_queue *j;
  weft_err e;
  if (!args_queue_n(env, info, 1, &j, 0, NULL) || !has_out(env, j)) return NULL;
  return ret_or_throw(env, weft_queue_out_read(&j->q, &e), &e, j->q.tun_fd);
}

static napi_value js_out_encap(napi_env env, napi_callback_info info) {
  js_queue *j;
  int32_t n;
  if (!args_queue_n(env, info, 2, &j, 4096, &n) || !has_out(env, j)) return NULL;
  if (!j->q.peers) return arg_fail(env, false, "queue", "has no peer table (queueSetPeers)"), NULL;
  weft_queue_out_encap(&j->q, n);
  return ret_i32(env, j->q.train.msg_n);
}

static napi_value js_out_hop(napi_env env, napi_callback_info info) {
  js_queue *j;
  int32_t n;
  if (!args_queue_n(env, info, 2, &j, 4096, &n) || !has_out(env, j)) return NULL;
  weft_queue_out_hop(&j->q, n);
  return ret_undefined(env);
}

/* outRefused(queue): which socket refused the held-back train, SOCK_V4 or SOCK_V6 (0: nothing held back). */
static napi_value js_out_refused(napi_env env, napi_callback_info info) {
  js_queue *j;
  if (!args_queue_n(env, info, 1, &j, 0, NULL) || !has_out(env, j)) return NULL;
  return ret_i32(env, j->q.train.next < j->q.train.msg_n ? j->q.train.refused : 0);
}

static napi_value js_out_send(napi_env env, napi_callback_info info) {
  js_queue *j;
  weft_err e;
  if (!args_queue_n(env, info, 1, &j, 0, NULL) || !has_out(env, j)) return NULL;
  if (!j->q.peers) return ret_i32(env, 0);
  return ret_or_throw(env, weft_queue_out_send(&j->q, &e), &e, j->q.sock_fd);
}

static napi_value js_out_icmp(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  js_queue *j;
  int32_t slot, type, code;
  uint32_t from;
  if (!args_get(env, info, 5, argv) || !arg_queue(env, argv[0], &j) || !has_out(env, j) ||
      !arg_i32(env, argv[1], "slot", 0, j->q.out_slots - 1, &slot) || !arg_i32(env, argv[2], "type", 0, 255, &type) ||
      !arg_i32(env, argv[3], "code", 0, 255, &code) || !arg_u32(env, argv[4], "fromAddr", UINT32_MAX, &from))
    return NULL;
  return ret_bool(env, weft_queue_out_icmp(&j->q, slot, (uint8_t)type, (uint8_t)code, from) != 0);
}

/* outIcmp6(queue, slot, type, code, param, fromAddr): fromAddr a 16-byte Buffer. */
static napi_value js_out_icmp6(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  js_queue *j;
  int32_t slot, type, code;
  uint32_t param;
  uint8_t *from;
  if (!args_get(env, info, 6, argv) || !arg_queue(env, argv[0], &j) || !has_out(env, j) ||
      !arg_i32(env, argv[1], "slot", 0, j->q.out_slots - 1, &slot) || !arg_i32(env, argv[2], "type", 0, 255, &type) ||
      !arg_i32(env, argv[3], "code", 0, 255, &code) || !arg_u32(env, argv[4], "param", UINT32_MAX, &param) ||
      !ARG_U8(env, argv[5], "fromAddr", 16, &from, NULL))
    return NULL;
  return ret_bool(env, weft_queue_out_icmp6(&j->q, slot, (uint8_t)type, (uint8_t)code, param, from) != 0);
}

static napi_value js_in_recv(napi_env env, napi_callback_info info) {
  js_queue *j;
  weft_err e;
  if (!args_queue_n(env, info, 1, &j, 0, NULL) || !has_in(env, j)) return NULL;
  return ret_or_throw(env, weft_queue_in_recv(&j->q, &e), &e, j->q.sock_fd);
}

static napi_value js_in_decap(napi_env env, napi_callback_info info) {
  js_queue *j;
  int32_t n;
  if (!args_queue_n(env, info, 2, &j, 4096, &n) || !has_in(env, j)) return NULL;
  return ret_i32(env, weft_queue_in_decap(&j->q, n));
}

static napi_value js_in_write(napi_env env, napi_callback_info info) {
  js_queue *j;
  int32_t n;
  if (!args_queue_n(env, info, 2, &j, INT32_MAX, &n) || !has_in(env, j)) return NULL;
  return ret_i32(env, weft_queue_in_write(&j->q, n));
}

/* ---- 5. One datagram decapsulated (the dgram tier; tests) ---- */

/* The TUN MTU, an optional trailing argument at index `at`: absent or undefined = 0 (no limit). */
static bool arg_opt_mtu(napi_env env, napi_callback_info info, size_t at, int32_t *mtu) {
  napi_value argv[10];
  size_t argc = 10;
  if (at >= argc) return arg_fail(env, true, "mtu", "is past the arguments this call takes");
  napi_valuetype t;
  *mtu = 0;
  NAPI(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc <= at) return true;
  NAPI(env, napi_typeof(env, argv[at], &t));
  if (t == napi_undefined) return true;
  return arg_i32(env, argv[at], "mtu", 0, 65535, mtu);
}

/* decap(encap, buf, off, len, vni, innerLen, counters): the inner packet's offset in buf, its length in
 * innerLen[0]; or a negative verdict, counted. A partial checksum (a kernel sender's) is completed. */
static napi_value js_decap(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  const weft_encap_ops *ops;
  buf_span d;
  uint32_t vni;
  int32_t *inner;
  double *counters;
  if (!args_get(env, info, 7, argv) || !arg_encap(env, argv[0], &ops) ||
      !arg_buf_span(env, argv + 1, "buf", "off", 0, "len", 0, &d) || !arg_u32(env, argv[4], "vni", 0xffffff, &vni) ||
      !ARG_I32A(env, argv[5], "innerLen", 1, &inner) || !ARG_COUNTERS(env, argv[6], &counters))
    return NULL;
  int32_t v = weft_decap_one(ops, d.buf + d.off, d.len, vni, inner);
  if (v < 0) {
    weft_drop(counters, -v - 1);
    return ret_i32(env, v);
  }
  weft_ip_complete_l4_csum(d.buf + d.off + v, *inner);
  return ret_i32(env, d.off + v);
}

/* ---- 6. ICMP errors back into TUN ---- */

static napi_value js_icmp_error(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  int fd;
  uint8_t *scratch;
  size_t scratch_len;
  buf_span pkt;
  int32_t type, code;
  uint32_t from;
  double *counters;
  if (!args_get(env, info, 9, argv) || !arg_fd(env, argv[0], "tunFd", &fd) ||
      !arg_buf_span(env, argv + 1, "slab", "pktOff", 0, "pktLen", 0, &pkt) ||
      !arg_i32(env, argv[4], "type", 0, 255, &type) || !arg_i32(env, argv[5], "code", 0, 255, &code) ||
      !arg_u32(env, argv[6], "fromAddr", UINT32_MAX, &from) ||
      !ARG_U8(env, argv[7], "scratch", WEFT_ICMP_SCRATCH_MIN, &scratch, &scratch_len) ||
      !ARG_COUNTERS(env, argv[8], &counters))
    return NULL;
  int32_t n = weft_icmp_error_build(pkt.buf + pkt.off, pkt.len, (uint8_t)type, (uint8_t)code, from, scratch,
                                    (int32_t)(scratch_len > INT32_MAX ? INT32_MAX : scratch_len));
  if (n <= 0 || !weft_tun_write_one(fd, scratch, n, counters)) return ret_bool(env, false);
  counters[WEFT_C_ICMP_SENT] += 1;
  return ret_bool(env, true);
}

/* icmp6Error(tunFd, slab, pktOff, pktLen, type, code, param, fromAddr, scratch, counters): the dgram tier's. */
static napi_value js_icmp6_error(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  int fd;
  uint8_t *scratch, *from;
  size_t scratch_len;
  buf_span pkt;
  int32_t type, code;
  uint32_t param;
  double *counters;
  if (!args_get(env, info, 10, argv) || !arg_fd(env, argv[0], "tunFd", &fd) ||
      !arg_buf_span(env, argv + 1, "slab", "pktOff", 0, "pktLen", 0, &pkt) ||
      !arg_i32(env, argv[4], "type", 0, 255, &type) || !arg_i32(env, argv[5], "code", 0, 255, &code) ||
      !arg_u32(env, argv[6], "param", UINT32_MAX, &param) || !ARG_U8(env, argv[7], "fromAddr", 16, &from, NULL) ||
      !ARG_U8(env, argv[8], "scratch", 40 + 8 + 40, &scratch, &scratch_len) ||
      !ARG_COUNTERS(env, argv[9], &counters))
    return NULL;
  int32_t n = weft_icmp6_error_build(pkt.buf + pkt.off, pkt.len, (uint8_t)type, (uint8_t)code, param, from, scratch,
                                     (int32_t)(scratch_len > INT32_MAX ? INT32_MAX : scratch_len));
  if (n <= 0 || !weft_tun_write_one(fd, scratch, n, counters)) return ret_bool(env, false);
  counters[WEFT_C_ICMP_SENT] += 1;
  return ret_bool(env, true);
}

/* ---- 7. One packet per call, for the dgram tier ---- */

static napi_value js_tun_read_one(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int fd;
  buf_span b;
  double *counters;
  weft_err e;
  if (!args_get(env, info, 5, argv) || !arg_fd(env, argv[0], "fd", &fd) ||
      !arg_buf_span(env, argv + 1, "buf", "off", 0, "max", 0, &b) || !ARG_COUNTERS(env, argv[4], &counters))
    return NULL;
  return ret_or_throw(env, weft_tun_read_one(fd, b.buf + b.off, b.len, counters, &e), &e, fd);
}

static napi_value js_tun_write_one(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int fd;
  buf_span b;
  int32_t mtu;
  double *counters;
  if (!args_get(env, info, 5, argv) || !arg_fd(env, argv[0], "fd", &fd) ||
      !arg_buf_span(env, argv + 1, "buf", "off", 0, "len", 1, &b) || !ARG_COUNTERS(env, argv[4], &counters) ||
      !arg_opt_mtu(env, info, 5, &mtu))
    return NULL;
  return ret_bool(env, weft_tun_write_mtu(fd, b.buf + b.off, b.len, mtu, counters) > 0);
}


/* ---- 8. Offloads and the pure byte work the queue runs (tests and tools call these directly) ---- */

static napi_value js_tun_set_offload(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  uint32_t flags;
  weft_err e;
  if (!args_get(env, info, 2, argv) || !arg_fd(env, argv[0], "fd", &fd) ||
      !arg_u32(env, argv[1], "flags", 0xff, &flags))
    return NULL;
  int r = weft_tun_set_offload(fd, flags, &e);
  if (r < 0) return throw_fd(env, e.code, e.syscall, fd);
  return ret_bool(env, r == 1);
}

static napi_value js_tun_get_iff(napi_env env, napi_callback_info info) {
  napi_value argv[1], obj, v;
  int fd;
  char name[64];
  weft_err e;
  if (!args_get(env, info, 1, argv) || !arg_fd(env, argv[0], "fd", &fd)) return NULL;
  int flags = weft_tun_get_iff(fd, name, sizeof name, &e);
  if (flags < 0) return throw_fd(env, e.code, e.syscall, fd);
  NAPI(env, napi_create_object(env, &obj));
  NAPI(env, napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &v));
  NAPI(env, napi_set_named_property(env, obj, "name", v));
  NAPI(env, napi_create_int32(env, flags, &v));
  NAPI(env, napi_set_named_property(env, obj, "flags", v));
  return obj;
}

static napi_value js_udp_offload(napi_env env, napi_callback_info info) {
  napi_value argv[2], obj, v;
  int fd, seg, gro;
  bool want_gro;
  weft_err e;
  if (!args_get(env, info, 2, argv) || !arg_fd(env, argv[0], "fd", &fd) ||
      !arg_bool(env, argv[1], "wantGro", &want_gro))
    return NULL;
  if (weft_udp_offload(fd, want_gro, &seg, &gro, &e) < 0) return throw_fd(env, e.code, e.syscall, fd);
  NAPI(env, napi_create_object(env, &obj));
  NAPI(env, napi_get_boolean(env, seg, &v));
  NAPI(env, napi_set_named_property(env, obj, "segment", v));
  NAPI(env, napi_get_boolean(env, gro, &v));
  NAPI(env, napi_set_named_property(env, obj, "gro", v));
  return obj;
}

/* (slab, segOff, segLen, count, coalesce) at argv[0..4]. */
typedef struct {
  uint8_t *slab;
  size_t slab_len;
  int32_t count, *off, *len;
  bool coalesce;
} gro_segs;

static bool arg_gro_segs(napi_env env, const napi_value *argv, gro_segs *g) {
  return arg_i32(env, argv[3], "count", 0, INT32_MAX, &g->count) &&
         ARG_U8(env, argv[0], "slab", 0, &g->slab, &g->slab_len) &&
         ARG_I32A(env, argv[1], "segOff", (size_t)g->count, &g->off) &&
         ARG_I32A(env, argv[2], "segLen", (size_t)g->count, &g->len) &&
         arg_bool(env, argv[4], "coalesce", &g->coalesce);
}

/* Test sink: each output packet (virtio header + packet) back to back in a Buffer. */
typedef struct {
  uint8_t *out;
  size_t cap, used;
  int32_t *lens;
  int32_t max, n;
} buf_sink;

static int buffer_sink(void *ctx, const struct iovec *iov, int iovcnt, double *counters) {
  (void)counters;
  buf_sink *b = ctx;
  size_t total = 0;
  for (int k = 0; k < iovcnt; k++) total += iov[k].iov_len;
  if (b->n >= b->max || b->used + total > b->cap) return 0;
  for (int k = 0; k < iovcnt; k++) {
    memcpy(b->out + b->used, iov[k].iov_base, iov[k].iov_len);
    b->used += iov[k].iov_len;
  }
  b->lens[b->n++] = (int32_t)total;
  return 1;
}

static napi_value js_gro_build(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  gro_segs g;
  uint8_t *out;
  size_t out_len, n;
  int32_t *olen;
  double *counters;
  if (!args_get(env, info, 8, argv) || !arg_gro_segs(env, argv, &g) ||
      !ARG_U8(env, argv[5], "out", 0, &out, &out_len) ||
      !arg_typed(env, argv[6], "outLen", napi_int32_array, "must be an Int32Array", 0, (void **)&olen, &n) ||
      !ARG_COUNTERS(env, argv[7], &counters))
    return NULL;
  buf_sink b = {out, out_len, 0, olen, n > INT32_MAX ? INT32_MAX : (int32_t)n, 0};
  int32_t mtu;
  if (!arg_opt_mtu(env, info, 8, &mtu)) return NULL;
  weft_gro_run(g.slab, g.slab_len, g.off, g.len, g.count, g.coalesce, mtu, buffer_sink, &b, counters);
  return ret_i32(env, b.n);
}

static napi_value js_gso_split(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  buf_span pkt;
  uint8_t *out;
  size_t out_len;
  int32_t mtu, room, flags, *result;
  double *counters;
  if (!args_get(env, info, 9, argv) || !arg_buf_span(env, argv, "buf", "pktOff", WEFT_VNET_HDR_LEN, "len", 0, &pkt) ||
      !arg_i32(env, argv[3], "mtu", 68, 65535, &mtu) || !ARG_U8(env, argv[4], "out", 0, &out, &out_len) ||
      !arg_i32(env, argv[5], "room", 0, 256, &room) ||
      !arg_i32(env, argv[6], "flags", 0, WEFT_GSO_TTL_DEC | WEFT_GSO_CSUM_PARTIAL, &flags) ||
      !ARG_I32A(env, argv[7], "result", 2, &result) || !ARG_COUNTERS(env, argv[8], &counters))
    return NULL;
  return ret_i32(env, weft_gso_split(pkt.buf + pkt.off, pkt.len, mtu, out, out_len, room, flags, &result[0],
                                     &result[1], counters));
}

/* ---- 9. WireGuard transport (weft.h, wg.c) ---- */

static bool export_i32(napi_env env, napi_value exports, const char *name, int32_t v);
static bool export_names(napi_env env, napi_value exports, const char *name, const char *const *names, size_t n);

/* The session table: a Buffer of a power of two of WG_SESSION_SIZE records, 8-byte aligned (C uses atomics in it). */
static bool arg_wg_table(napi_env env, napi_value v, uint8_t **table, int32_t *nslots) {
  size_t n;
  if (!ARG_U8(env, v, "sessions", WEFT_WG_SESSION_SIZE, table, &n)) return false;
  size_t slots = n / WEFT_WG_SESSION_SIZE;
  if (n % WEFT_WG_SESSION_SIZE || (slots & (slots - 1)) || slots > ((size_t)1 << 20))
    return arg_fail(env, true, "sessions", "must hold a power of two (at most 2^20) of WG_SESSION_SIZE records");
  if ((uintptr_t)*table % 8) return arg_fail(env, true, "sessions", "must be 8-byte aligned");
  *nslots = (int32_t)slots;
  return true;
}

#define ARG_WG_COUNTERS(env, v, d)                                                                            \
  arg_typed(env, v, "counters", napi_float64_array, "must be a Float64Array(WG_COUNTER_COUNT)",               \
            WEFT_WG_COUNTER_COUNT, (void **)(d), NULL)

static bool arg_f64(napi_env env, napi_value v, const char *name, double *out) {
  if (!arg_type(env, v, napi_number, name, "must be a number")) return false;
  NAPI(env, napi_get_value_double(env, v, out));
  return true;
}

/* Keys are never echoed: an argument error names the argument only. */
#define ARG_KEY(env, v, name, d) ARG_U8(env, v, name, 32, d, NULL)

static napi_value js_wg_session_set(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  uint8_t *table, *send_key, *recv_key;
  int32_t nslots, peer;
  uint32_t local, remote;
  double expires;
  if (!args_get(env, info, 7, argv) || !arg_wg_table(env, argv[0], &table, &nslots) ||
      !arg_u32(env, argv[1], "localIndex", UINT32_MAX, &local) ||
      !arg_u32(env, argv[2], "remoteIndex", UINT32_MAX, &remote) ||
      !arg_i32(env, argv[3], "peer", 0, INT32_MAX, &peer) || !ARG_KEY(env, argv[4], "sendKey", &send_key) ||
      !ARG_KEY(env, argv[5], "recvKey", &recv_key) || !arg_f64(env, argv[6], "expiresMs", &expires))
    return NULL;
  weft_wg_session_set(table, nslots, local, remote, peer, send_key, recv_key, expires);
  return ret_undefined(env);
}

static napi_value js_wg_session_clear(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint8_t *table;
  int32_t nslots, slot;
  if (!args_get(env, info, 2, argv) || !arg_wg_table(env, argv[0], &table, &nslots) ||
      !arg_i32(env, argv[1], "slot", 0, nslots - 1, &slot))
    return NULL;
  weft_wg_session_clear(table, nslots, slot);
  return ret_undefined(env);
}

static napi_value js_wg_seal_batch(napi_env env, napi_callback_info info) {
  napi_value argv[12];
  uint8_t *table, *slab;
  size_t slab_len, npeers;
  int32_t nslots, slot_size, headroom, count, mtu, *len, *off, *peer, *send_slot;
  double now, *counters;
  if (!args_get(env, info, 12, argv) || !arg_wg_table(env, argv[0], &table, &nslots) ||
      !arg_i32(env, argv[2], "slotSize", WEFT_WG_OVERHEAD + 1, INT32_MAX, &slot_size) ||
      !arg_i32(env, argv[3], "headroom", WEFT_WG_HEADER_LEN, slot_size - WEFT_WG_TAG_LEN, &headroom) ||
      !arg_i32(env, argv[8], "count", 0, INT32_MAX, &count) || !ARG_U8(env, argv[1], "slab", 0, &slab, &slab_len) ||
      !ARG_I32A(env, argv[4], "len", (size_t)count, &len) || !ARG_I32A(env, argv[5], "off", (size_t)count, &off) ||
      !ARG_I32A(env, argv[6], "peer", (size_t)count, &peer) ||
      !arg_typed(env, argv[7], "sendSlot", napi_int32_array, "must be an Int32Array", 0, (void **)&send_slot,
                 &npeers) ||
      !arg_i32(env, argv[9], "mtu", 0, 65535, &mtu) || !arg_f64(env, argv[10], "nowMs", &now) ||
      !ARG_WG_COUNTERS(env, argv[11], &counters) || !check_slab(env, slab_len, count, slot_size))
    return NULL;
  weft_wg_seal_batch(table, nslots, slab, slot_size, headroom, len, off, peer, send_slot,
                     npeers > INT32_MAX ? INT32_MAX : (int32_t)npeers, count, mtu, now, counters);
  return ret_undefined(env);
}

static napi_value js_wg_seal_segments(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  uint8_t *table, *buf;
  size_t buf_len;
  int32_t nslots, slot, first, seg_len, nseg, last_len, mtu;
  double now, *counters;
  if (!args_get(env, info, 10, argv) || !arg_wg_table(env, argv[0], &table, &nslots) ||
      !arg_i32(env, argv[1], "slot", 0, nslots - 1, &slot) || !ARG_U8(env, argv[2], "buf", 0, &buf, &buf_len) ||
      !arg_i32(env, argv[3], "first", WEFT_WG_HEADER_LEN, INT32_MAX, &first) ||
      !arg_i32(env, argv[4], "segLen", 0, 65535, &seg_len) || !arg_i32(env, argv[5], "nseg", 1, 65535, &nseg) ||
      !arg_i32(env, argv[6], "lastLen", 0, seg_len, &last_len) || !arg_i32(env, argv[7], "mtu", 0, 65535, &mtu) ||
      !arg_f64(env, argv[8], "nowMs", &now) || !ARG_WG_COUNTERS(env, argv[9], &counters))
    return NULL;
  return ret_i32(env, weft_wg_seal_segments(table, nslots, slot, buf, buf_len, first, seg_len, nseg, last_len, mtu,
                                            now, counters));
}

static napi_value js_wg_open_batch(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  uint8_t *table, *slab;
  size_t slab_len;
  int32_t nslots, slot_size, count, *len, *off, *peer;
  double now, *counters;
  if (!args_get(env, info, 9, argv) || !arg_wg_table(env, argv[0], &table, &nslots) ||
      !arg_i32(env, argv[2], "slotSize", 1, INT32_MAX, &slot_size) ||
      !arg_i32(env, argv[6], "count", 0, INT32_MAX, &count) || !ARG_U8(env, argv[1], "slab", 0, &slab, &slab_len) ||
      !ARG_I32A(env, argv[3], "len", (size_t)count, &len) || !ARG_I32A(env, argv[4], "off", (size_t)count, &off) ||
      !ARG_I32A(env, argv[5], "peer", (size_t)count, &peer) || !arg_f64(env, argv[7], "nowMs", &now) ||
      !ARG_WG_COUNTERS(env, argv[8], &counters) || !check_slab(env, slab_len, count, slot_size))
    return NULL;
  weft_wg_open_batch(table, nslots, slab, slot_size, len, off, peer, count, now, counters);
  return ret_undefined(env);
}

static napi_value js_wg_open_list(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  uint8_t *table, *buf;
  size_t buf_len;
  int32_t nslots, count, *len, *off, *peer;
  double now, *counters;
  if (!args_get(env, info, 8, argv) || !arg_wg_table(env, argv[0], &table, &nslots) ||
      !arg_i32(env, argv[5], "count", 0, INT32_MAX, &count) || !ARG_U8(env, argv[1], "buf", 0, &buf, &buf_len) ||
      !ARG_I32A(env, argv[2], "off", (size_t)count, &off) || !ARG_I32A(env, argv[3], "len", (size_t)count, &len) ||
      !ARG_I32A(env, argv[4], "peer", (size_t)count, &peer) || !arg_f64(env, argv[6], "nowMs", &now) ||
      !ARG_WG_COUNTERS(env, argv[7], &counters))
    return NULL;
  weft_wg_open_list(table, nslots, buf, buf_len, off, len, peer, count, now, counters);
  return ret_undefined(env);
}

/* outWgSeal(queue, sessions, sendSlot, nowMs, counters): the offload tier's WireGuard transform over the train. */
static napi_value js_out_wg_seal(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  js_queue *j;
  uint8_t *table;
  int32_t nslots, *send_slot;
  size_t npeers;
  double now, *counters;
  if (!args_get(env, info, 5, argv) || !arg_queue(env, argv[0], &j) || !has_out(env, j) ||
      !arg_wg_table(env, argv[1], &table, &nslots) ||
      !arg_typed(env, argv[2], "sendSlot", napi_int32_array, "must be an Int32Array", 0, (void **)&send_slot,
                 &npeers) ||
      !arg_f64(env, argv[3], "nowMs", &now) || !ARG_WG_COUNTERS(env, argv[4], &counters))
    return NULL;
  if (!j->q.wg_out) return arg_fail(env, true, "queue", "was opened without segOverhead"), NULL;
  weft_queue_out_wg_seal(&j->q, table, nslots, send_slot, (int32_t)(npeers > INT32_MAX ? INT32_MAX : npeers), now,
                         counters);
  return ret_undefined(env);
}

/* glibc keeps what the start-up freed (module compiles, parsing; V8's helper threads' arenas) for reuse, and an
 * idle daemon never reuses most of it: malloc_trim(0) returns the free pages of every arena to the kernel. Whether
 * any were returned; false where the C library has no malloc_trim. */
static napi_value js_malloc_trim(napi_env env, napi_callback_info info) {
  (void)info;
#ifdef __GLIBC__
  return ret_bool(env, malloc_trim(0) != 0);
#else
  return ret_bool(env, false);
#endif
}

static napi_value js_wg_sealed_len(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t len, mtu;
  if (!args_get(env, info, 2, argv) || !arg_i32(env, argv[0], "len", 0, 65535, &len) ||
      !arg_i32(env, argv[1], "mtu", 0, 65535, &mtu))
    return NULL;
  return ret_i32(env, weft_wg_sealed_len(len, mtu));
}

static napi_value js_wg_mac(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  uint8_t *key, *data, *out;
  size_t key_len, data_len, out_len;
  if (!args_get(env, info, 3, argv) || !ARG_U8(env, argv[0], "key", 1, &key, &key_len) ||
      !ARG_U8(env, argv[1], "data", 0, &data, &data_len) || !ARG_U8(env, argv[2], "out", 1, &out, &out_len))
    return NULL;
  if (key_len > 32) return arg_fail(env, true, "key", "must hold at most 32 bytes"), NULL;
  if (out_len > 32) return arg_fail(env, true, "out", "must hold at most 32 bytes"), NULL;
  if (weft_wg_blake2s_mac(key, key_len, data, data_len, out, out_len) < 0)
    return throw_sys(env, EINVAL, "EVP_MAC BLAKE2SMAC", "keyed BLAKE2s");
  return ret_undefined(env);
}

/* wgXaeadSeal(key, nonce, plaintext, ad, out) writes plaintext.length + 16 bytes; wgXaeadOpen(key, nonce,
 * ciphertext, ad, out) writes ciphertext.length - 16 bytes and returns false when the tag does not verify. */
static napi_value wg_xaead(napi_env env, napi_callback_info info, bool seal) {
  napi_value argv[5];
  uint8_t *key, *nonce, *in, *ad, *out;
  size_t in_len, ad_len, out_len;
  if (!args_get(env, info, 5, argv) || !ARG_KEY(env, argv[0], "key", &key) ||
      !ARG_U8(env, argv[1], "nonce", 24, &nonce, NULL) || !ARG_U8(env, argv[2], seal ? "plaintext" : "ciphertext",
                                                                  seal ? 0 : 16, &in, &in_len) ||
      !ARG_U8(env, argv[3], "ad", 0, &ad, &ad_len) ||
      !ARG_U8(env, argv[4], "out", seal ? in_len + 16 : in_len - 16, &out, &out_len))
    return NULL;
  if (seal) {
    if (weft_wg_xaead_seal(key, nonce, in, in_len, ad, ad_len, out) < 0)
      return throw_sys(env, EINVAL, "crypto_aead_xchacha20poly1305_ietf_encrypt", "cookie");
    return ret_undefined(env);
  }
  return ret_bool(env, weft_wg_xaead_open(key, nonce, in, in_len, ad, ad_len, out) == 0);
}

static napi_value js_wg_xaead_seal(napi_env env, napi_callback_info info) { return wg_xaead(env, info, true); }
static napi_value js_wg_xaead_open(napi_env env, napi_callback_info info) { return wg_xaead(env, info, false); }

static const char *const wg_counter_names[WEFT_WG_COUNTER_COUNT] = {
#define WEFT_X(id, name) #name,
    WEFT_WG_COUNTERS(WEFT_X)
#undef WEFT_X
#define WEFT_X(id, name) "wg_" #name,
        WEFT_WG_VERDICTS(WEFT_X)
#undef WEFT_X
};

static const char *const wg_verdict_names[WEFT_WG_V_COUNT] = {
#define WEFT_X(id, name) #name,
    WEFT_WG_VERDICTS(WEFT_X)
#undef WEFT_X
};

static bool wg_exports(napi_env env, napi_value exports) {
  return export_i32(env, exports, "WG_SESSION_SIZE", WEFT_WG_SESSION_SIZE) &&
         export_i32(env, exports, "WG_HEADER_LEN", WEFT_WG_HEADER_LEN) &&
         export_i32(env, exports, "WG_OVERHEAD", WEFT_WG_OVERHEAD) &&
         export_i32(env, exports, "WG_WINDOW", WEFT_WG_WINDOW) &&
         export_i32(env, exports, "WG_COUNTER_COUNT", WEFT_WG_COUNTER_COUNT) &&
         export_i32(env, exports, "WG_VERDICT_BASE", WEFT_WG_VERDICT(0)) &&
         export_i32(env, exports, "WG_S_STATE", WEFT_WG_S_STATE) &&
         export_i32(env, exports, "WG_S_LOCAL", WEFT_WG_S_LOCAL) &&
         export_i32(env, exports, "WG_S_REMOTE", WEFT_WG_S_REMOTE) &&
         export_i32(env, exports, "WG_S_PEER", WEFT_WG_S_PEER) &&
         export_i32(env, exports, "WG_S_FLAGS", WEFT_WG_S_FLAGS) &&
         export_i32(env, exports, "WG_S_SEND_CTR", WEFT_WG_S_SEND_CTR) &&
         export_i32(env, exports, "WG_S_EXPIRES", WEFT_WG_S_EXPIRES) &&
         export_i32(env, exports, "WG_S_TX_PACKETS", WEFT_WG_S_TX_PACKETS) &&
         export_i32(env, exports, "WG_S_TX_BYTES", WEFT_WG_S_TX_BYTES) &&
         export_i32(env, exports, "WG_S_RX_PACKETS", WEFT_WG_S_RX_PACKETS) &&
         export_i32(env, exports, "WG_S_RX_BYTES", WEFT_WG_S_RX_BYTES) &&
         export_i32(env, exports, "WG_S_RX_LAST", WEFT_WG_S_RX_LAST) &&
         export_i32(env, exports, "WG_F_RECEIVED", (int32_t)WEFT_WG_F_RECEIVED) &&
         export_names(env, exports, "wgCounterNames", wg_counter_names, WEFT_WG_COUNTER_COUNT) &&
         export_names(env, exports, "wgVerdictNames", wg_verdict_names, WEFT_WG_V_COUNT);
}

/* ---- exports ---- */

static bool export_i32(napi_env env, napi_value exports, const char *name, int32_t v) {
  napi_value n;
  NAPI(env, napi_create_int32(env, v, &n));
  NAPI(env, napi_set_named_property(env, exports, name, n));
  return true;
}

static bool export_names(napi_env env, napi_value exports, const char *name, const char *const *names, size_t n) {
  napi_value arr, s;
  NAPI(env, napi_create_array_with_length(env, n, &arr));
  for (size_t i = 0; i < n; i++) {
    NAPI(env, napi_create_string_utf8(env, names[i], NAPI_AUTO_LENGTH, &s));
    NAPI(env, napi_set_element(env, arr, (uint32_t)i, s));
  }
  NAPI(env, napi_object_freeze(env, arr));
  NAPI(env, napi_set_named_property(env, exports, name, arr));
  return true;
}

static const char *const counter_names[WEFT_COUNTER_COUNT] = {
#define WEFT_X(id, name) #name,
    WEFT_COUNTERS(WEFT_X)
#undef WEFT_X
#define WEFT_X(id, name) "drop_" #name,
        WEFT_DROPS(WEFT_X)
#undef WEFT_X
};

static const char *const drop_names[WEFT_DROP_COUNT] = {
#define WEFT_X(id, name) #name,
    WEFT_DROPS(WEFT_X)
#undef WEFT_X
};

NAPI_MODULE_INIT() {
  napi_property_descriptor fns[] = {
#define FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL}
      FN("tunOpen", js_tun_open), FN("linkSet", js_link_set), FN("close", js_close), FN("udpOpen", js_udp_open),
      FN("udpLocalPort", js_udp_local_port), FN("udpSteerByInnerFlow", js_udp_steer_by_inner_flow),
      FN("udpSendTo", js_udp_send_to), FN("outWgSeal", js_out_wg_seal),
      FN("udpOffload", js_udp_offload), FN("tunSetOffload", js_tun_set_offload), FN("tunGetIff", js_tun_get_iff),
      FN("pollStart", js_poll_start), FN("pollUpdate", js_poll_update), FN("pollStop", js_poll_stop),
      FN("queueOpen", js_queue_open), FN("queueSetPeers", js_queue_set_peers), FN("queueClose", js_queue_close),
      FN("queueUdpSegment", js_queue_udp_segment), FN("outRead", js_out_read), FN("outEncap", js_out_encap),
      FN("outHop", js_out_hop), FN("outSend", js_out_send),
      FN("outRefused", js_out_refused), FN("outIcmp", js_out_icmp), FN("outIcmp6", js_out_icmp6),
      FN("inRecv", js_in_recv), FN("inDecap", js_in_decap),
      FN("inWrite", js_in_write), FN("decap", js_decap), FN("icmpError", js_icmp_error),
      FN("icmp6Error", js_icmp6_error),
      FN("tunReadOne", js_tun_read_one), FN("tunWriteOne", js_tun_write_one), FN("groBuild", js_gro_build),
      FN("gsoSplit", js_gso_split), FN("mallocTrim", js_malloc_trim),
      FN("wgSessionSet", js_wg_session_set), FN("wgSessionClear", js_wg_session_clear),
      FN("wgSealBatch", js_wg_seal_batch), FN("wgSealSegments", js_wg_seal_segments),
      FN("wgOpenBatch", js_wg_open_batch), FN("wgOpenList", js_wg_open_list), FN("wgSealedLen", js_wg_sealed_len),
      FN("wgMac", js_wg_mac), FN("wgXaeadSeal", js_wg_xaead_seal), FN("wgXaeadOpen", js_wg_xaead_open),
#undef FN
  };
  NAPI(env, napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns));
  if (!export_i32(env, exports, "HEADROOM", WEFT_HEADROOM) || !export_i32(env, exports, "SLOT_SIZE", WEFT_SLOT_SIZE) ||
      !export_i32(env, exports, "MAX_DATAGRAM", WEFT_MAX_DATAGRAM) ||
      !export_i32(env, exports, "PEER_RECORD_SIZE", WEFT_PEER_RECORD_SIZE) ||
      !export_i32(env, exports, "ENCAP_UDP", WEFT_ENCAP_UDP) ||
      !export_i32(env, exports, "ENCAP_VXLAN", WEFT_ENCAP_VXLAN) ||
      !export_i32(env, exports, "ENCAP_GENEVE", WEFT_ENCAP_GENEVE) ||
      !export_i32(env, exports, "ENCAP_UDP_HLEN", weft_encap_udp.hlen) ||
      !export_i32(env, exports, "ENCAP_VXLAN_HLEN", weft_encap_vxlan.hlen) ||
      !export_i32(env, exports, "ENCAP_GENEVE_HLEN", weft_encap_geneve.hlen) ||
      !export_i32(env, exports, "READABLE", UV_READABLE) || !export_i32(env, exports, "WRITABLE", UV_WRITABLE) ||
      !export_i32(env, exports, "SOCK_V4", WEFT_SOCK_V4) || !export_i32(env, exports, "SOCK_V6", WEFT_SOCK_V6) ||
      !export_i32(env, exports, "COUNTER_COUNT", WEFT_COUNTER_COUNT) ||
      !export_i32(env, exports, "ICMP_SCRATCH_MIN", WEFT_ICMP_SCRATCH_MIN) ||
      !export_i32(env, exports, "VNET_HDR_LEN", WEFT_VNET_HDR_LEN) ||
      !export_i32(env, exports, "TAILROOM", WEFT_TAILROOM) ||
      !export_i32(env, exports, "PEER_ADDR", WEFT_PEER_ADDR) ||
      !export_i32(env, exports, "PEER_PORT", WEFT_PEER_PORT) ||
      !export_i32(env, exports, "PEER_MAC", WEFT_PEER_MAC) || !export_i32(env, exports, "PEER_VNI", WEFT_PEER_VNI) ||
      !export_i32(env, exports, "PEER_FLAGS", WEFT_PEER_FLAGS) ||
      !export_i32(env, exports, "PEER_F_CSUM_PARTIAL", WEFT_PEER_F_CSUM_PARTIAL) ||
      !export_i32(env, exports, "PEER_F_IPV6", WEFT_PEER_F_IPV6) ||
      !export_i32(env, exports, "ICMP6_SCRATCH", WEFT_ICMP6_SCRATCH) ||
      !export_i32(env, exports, "TUN_MULTI_QUEUE", WEFT_TUN_MULTI_QUEUE) ||
      !export_i32(env, exports, "TUN_VNET_HDR", WEFT_TUN_VNET_HDR) ||
      !export_i32(env, exports, "TUN_NAPI", WEFT_TUN_NAPI) ||
      !export_i32(env, exports, "GSO_TTL_DEC", WEFT_GSO_TTL_DEC) ||
      !export_i32(env, exports, "GSO_CSUM_PARTIAL", WEFT_GSO_CSUM_PARTIAL) ||
      !export_i32(env, exports, "GRO_MAX_SEGS", WEFT_GRO_MAX_SEGS) ||
      !export_i32(env, exports, "GSO_MAX_SEGS", WEFT_GSO_MAX_SEGS) ||
      !export_names(env, exports, "counterNames", counter_names, WEFT_COUNTER_COUNT) ||
      !export_names(env, exports, "dropNames", drop_names, WEFT_DROP_COUNT))
    return NULL;
  if (!wg_exports(env, exports)) return NULL;
  return exports;
}
