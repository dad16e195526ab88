;; Word count for Weft, hand-written WebAssembly text against guest-sdk/ABI.md (ABI version 1) alone.
;;
;; UDFs:
;;   weft_flat_map_split_words  one record per word occurrence: key = the word, value = "1"
;;   weft_reduce_sum            sums decimal counts: one decimal value per group
;;
;; Freestanding: no imports at all. Build with `wat2wasm wordcount.wat -o wordcount.wasm` (wabt) or
;; the `wat` crate. Uses bulk memory (memory.copy, memory.fill) from WebAssembly 2.0.
;;
;; Memory layout (one exported memory, grown as needed):
;;      0 ..   64  unused, so that no pointer handed out is 0
;;     64 ..  704  constant message fragments and hex digits (data segments below)
;;   1024 .. 1536  error message buffer (guest-owned, rewritten only by the next failing call)
;;   1536 .. 1560  scratch for the decimal digits of one sum
;;   1600 .. 1672  descriptors of the six growable output buffers, 12 bytes each:
;;                 +0 ptr, +4 capacity in bytes, +8 bytes already initialised (for the constant
;;                 buffers of split_words' values)
;;   2048 ..       the heap, handed out by the bump allocator
;;
;; The allocator (weft_alloc / weft_free) is a bump allocator:
;;   - weft_alloc(size, align) rounds the heap top up to `align` (0 is taken as 1), hands out
;;     [top, top + size) and moves the top past it, growing the memory by whole pages when the
;;     block passes its end. It returns 0 when the block would pass 4 GiB or memory.grow fails.
;;     size 0 gives a valid non-zero pointer (the aligned top; nothing is reserved).
;;   - weft_free(ptr, size, align) reclaims a block only when it is the last one handed out
;;     (ptr + size == top): the top moves back to ptr. Any other block is leaked. The host
;;     allocates its frame and input buffers once and regrows them rarely, so the leak is bounded
;;     by those regrowths (ABI.md §2 says so of every bump allocator).
;;
;; Output buffers are allocated from the same heap and reused from call to call; steady-state
;; calls do not allocate. A buffer that must grow takes at least twice its old capacity: in place
;; when it is the last block on the heap (just a bump of the top), otherwise by a new block, a
;; copy, and a free of the old one (leaked unless it was on top). Growth is geometric, so what is
;; leaked stays below the buffer's final size. The values of split_words are all "1": their bytes
;; ('1' repeated) and offsets (0, 1, 2, ...) are written once, when their buffers grow.

(module
  (memory (export "memory") 1)

  ;; heap top of the bump allocator
  (global $top (mut i32) (i32.const 2048))
  ;; bytes used in the error buffer
  (global $err_len (mut i32) (i32.const 0))

  ;; ---------------------------------------------------------------- constants
  ;; message fragments, one 64-byte slot each; lengths are passed where they are used
  (data (i32.const 64)  "sum: value ")                                                   ;; 11
  (data (i32.const 128) " for key ")                                                     ;; 9
  (data (i32.const 192) " is not a decimal count (expected ASCII digits only)")          ;; 52
  (data (i32.const 256) " does not fit in a u64 count")                                  ;; 28
  (data (i32.const 320) "sum: total for key ")                                           ;; 19
  (data (i32.const 384) " overflows u64 when adding value ")                             ;; 33
  (data (i32.const 448) "split_words: out of memory while growing the output buffers")   ;; 59
  (data (i32.const 512) "sum: out of memory while growing the output buffers")           ;; 51
  (data (i32.const 576) "0123456789abcdef")                                              ;; hex digits
  (data (i32.const 640) "...")                                                           ;; 3

  ;; error message buffer and its size
  (global $ERR i32 (i32.const 1024))
  (global $ERR_CAP i32 (i32.const 512))
  ;; the digits of a sum are written backwards, ending here (20 digits hold any u64)
  (global $DIGITS_END i32 (i32.const 1560))
  ;; buffer descriptors
  (global $WORDS_OFFSETS i32 (i32.const 1600)) ;; split_words: u32 offsets of the words
  (global $WORDS_DATA i32 (i32.const 1612))    ;; split_words: the words, back to back
  (global $ONES_DATA i32 (i32.const 1624))     ;; split_words: '1' repeated (+8: bytes written)
  (global $ONES_OFFSETS i32 (i32.const 1636))  ;; split_words: u32 0, 1, 2, ... (+8: bytes written)
  (global $SUM_OFFSETS i32 (i32.const 1648))   ;; sum: u32 offsets of the sums
  (global $SUM_DATA i32 (i32.const 1660))      ;; sum: decimal sums, back to back

  ;; quoted keys and values in messages: at most this many bytes of them
  (global $QUOTE_MAX i32 (i32.const 40))

  ;; ---------------------------------------------------------------- required exports

  (func (export "weft_abi_version") (result i32)
    (i32.const 1))

  ;; Makes the memory at least $end bytes long (end <= 4 GiB). Returns 1, or 0 if it cannot grow.
  (func $ensure_memory (param $end i64) (result i32)
    (local $have i64)
    (local.set $have (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16)))
    (if (i64.le_u (local.get $end) (local.get $have))
      (then (return (i32.const 1))))
    (i32.ne
      (memory.grow
        (i32.wrap_i64
          (i64.shr_u (i64.add (i64.sub (local.get $end) (local.get $have)) (i64.const 65535))
                     (i64.const 16))))
      (i32.const -1)))

  (func $alloc (export "weft_alloc") (param $size i32) (param $align i32) (result i32)
    (local $mask i64)
    (local $ptr i64)
    (local $end i64)
    (if (i32.eqz (local.get $align)) (then (local.set $align (i32.const 1))))
    (local.set $mask (i64.sub (i64.extend_i32_u (local.get $align)) (i64.const 1)))
    ;; 64-bit arithmetic: nothing here can wrap around
    (local.set $ptr
      (i64.and (i64.add (i64.extend_i32_u (global.get $top)) (local.get $mask))
               (i64.xor (local.get $mask) (i64.const -1))))
    (local.set $end (i64.add (local.get $ptr) (i64.extend_i32_u (local.get $size))))
    (if (i64.gt_u (local.get $end) (i64.const 0xFFFF_FFFF))
      (then (return (i32.const 0))))
    (if (i32.eqz (call $ensure_memory (local.get $end)))
      (then (return (i32.const 0))))
    (global.set $top (i32.wrap_i64 (local.get $end)))
    (i32.wrap_i64 (local.get $ptr)))

  (func $free (export "weft_free") (param $ptr i32) (param $size i32) (param $align i32)
    ;; only the last block handed out can be given back
    (if (i64.eq (i64.add (i64.extend_i32_u (local.get $ptr)) (i64.extend_i32_u (local.get $size)))
                (i64.extend_i32_u (global.get $top)))
      (then (global.set $top (local.get $ptr)))))

  ;; ---------------------------------------------------------------- growable buffers

  ;; Gives the buffer described at $desc a capacity of exactly $size bytes (> its capacity),
  ;; keeping its contents. Returns 1, or 0 when out of memory (the buffer is then unchanged).
  (func $resize (param $desc i32) (param $size i32) (result i32)
    (local $old i32)
    (local $cap i32)
    (local $new i32)
    (local.set $old (i32.load (local.get $desc)))
    (local.set $cap (i32.load offset=4 (local.get $desc)))
    (if (i32.and (i32.ne (local.get $old) (i32.const 0))
                 (i32.eq (i32.add (local.get $old) (local.get $cap)) (global.get $top)))
      (then
        ;; the last block on the heap: grow it in place
        (if (i32.eqz (call $ensure_memory
                       (i64.add (i64.extend_i32_u (local.get $old)) (i64.extend_i32_u (local.get $size)))))
          (then (return (i32.const 0))))
        (global.set $top (i32.add (local.get $old) (local.get $size)))
        (i32.store offset=4 (local.get $desc) (local.get $size))
        (return (i32.const 1))))
    (local.set $new (call $alloc (local.get $size) (i32.const 8)))
    (if (i32.eqz (local.get $new)) (then (return (i32.const 0))))
    (memory.copy (local.get $new) (local.get $old) (local.get $cap))
    (if (local.get $old)
      (then (call $free (local.get $old) (local.get $cap) (i32.const 8))))
    (i32.store (local.get $desc) (local.get $new))
    (i32.store offset=4 (local.get $desc) (local.get $size))
    (i32.const 1))

  ;; Makes the buffer described at $desc hold at least $need bytes, keeping its contents. Grows
  ;; to at least twice its capacity (and at least 4 KiB), or to exactly $need if that much is not
  ;; available. Returns 1, or 0 when out of memory.
  (func $reserve (param $desc i32) (param $need i64) (result i32)
    (local $want i64)
    (if (i64.le_u (local.get $need) (i64.load32_u offset=4 (local.get $desc)))
      (then (return (i32.const 1))))
    (if (i64.gt_u (local.get $need) (i64.const 0xFFFF_FFFF))
      (then (return (i32.const 0))))
    (local.set $want (i64.shl (i64.load32_u offset=4 (local.get $desc)) (i64.const 1)))
    (if (i64.lt_u (local.get $want) (local.get $need)) (then (local.set $want (local.get $need))))
    (if (i64.lt_u (local.get $want) (i64.const 4096)) (then (local.set $want (i64.const 4096))))
    (if (i64.gt_u (local.get $want) (i64.const 0xFFFF_FFFF)) (then (local.set $want (local.get $need))))
    (if (call $resize (local.get $desc) (i32.wrap_i64 (local.get $want)))
      (then (return (i32.const 1))))
    (if (i64.gt_u (local.get $want) (local.get $need))
      (then (return (call $resize (local.get $desc) (i32.wrap_i64 (local.get $need))))))
    (i32.const 0))

  ;; ---------------------------------------------------------------- error messages

  ;; Appends $len bytes at $src to the error message (cut at the buffer's end).
  (func $err_bytes (param $src i32) (param $len i32)
    (local $room i32)
    (local.set $room (i32.sub (global.get $ERR_CAP) (global.get $err_len)))
    (if (i32.gt_u (local.get $len) (local.get $room)) (then (local.set $len (local.get $room))))
    (memory.copy (i32.add (global.get $ERR) (global.get $err_len)) (local.get $src) (local.get $len))
    (global.set $err_len (i32.add (global.get $err_len) (local.get $len))))

  (func $err_byte (param $c i32)
    (if (i32.lt_u (global.get $err_len) (global.get $ERR_CAP))
      (then
        (i32.store8 (i32.add (global.get $ERR) (global.get $err_len)) (local.get $c))
        (global.set $err_len (i32.add (global.get $err_len) (i32.const 1))))))

  ;; Length (2-4) of the well-formed UTF-8 sequence at $p (< $end, first byte >= 0x80), or 0 if
  ;; there is none (Unicode Table 3-7: no overlongs, no surrogates, nothing above U+10FFFF).
  (func $utf8_len (param $p i32) (param $end i32) (result i32)
    (local $b i32)
    (local $n i32)
    (local $lo i32)
    (local $hi i32)
    (local $i i32)
    (local.set $b (i32.load8_u (local.get $p)))
    (local.set $lo (i32.const 0x80))
    (local.set $hi (i32.const 0xBF))
    (block $known
      (if (i32.le_u (i32.sub (local.get $b) (i32.const 0xC2)) (i32.const 0x1D)) ;; C2..DF
        (then (local.set $n (i32.const 2)) (br $known)))
      (if (i32.le_u (i32.sub (local.get $b) (i32.const 0xE0)) (i32.const 0x0F)) ;; E0..EF
        (then
          (local.set $n (i32.const 3))
          (if (i32.eq (local.get $b) (i32.const 0xE0)) (then (local.set $lo (i32.const 0xA0))))
          (if (i32.eq (local.get $b) (i32.const 0xED)) (then (local.set $hi (i32.const 0x9F))))
          (br $known)))
      (if (i32.le_u (i32.sub (local.get $b) (i32.const 0xF0)) (i32.const 0x04)) ;; F0..F4
        (then
          (local.set $n (i32.const 4))
          (if (i32.eq (local.get $b) (i32.const 0xF0)) (then (local.set $lo (i32.const 0x90))))
          (if (i32.eq (local.get $b) (i32.const 0xF4)) (then (local.set $hi (i32.const 0x8F))))
          (br $known)))
      (return (i32.const 0)))
    (if (i32.lt_u (i32.sub (local.get $end) (local.get $p)) (local.get $n))
      (then (return (i32.const 0))))
    (local.set $b (i32.load8_u offset=1 (local.get $p)))
    (if (i32.or (i32.lt_u (local.get $b) (local.get $lo)) (i32.gt_u (local.get $b) (local.get $hi)))
      (then (return (i32.const 0))))
    (local.set $i (i32.const 2))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $b (i32.load8_u (i32.add (local.get $p) (local.get $i))))
        (if (i32.ne (i32.and (local.get $b) (i32.const 0xC0)) (i32.const 0x80))
          (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $n))

  ;; Appends "<at most QUOTE_MAX bytes of the $len bytes at $s>" to the message, followed by ...
  ;; when cut. Always valid UTF-8: well-formed UTF-8 is copied, `"` and `\` are escaped, and
  ;; control bytes and bytes that are not well-formed UTF-8 are written as \xNN.
  (func $err_quote (param $s i32) (param $len i32)
    (local $p i32)
    (local $end i32)
    (local $c i32)
    (local $n i32)
    (local.set $p (local.get $s))
    (local.set $end
      (i32.add (local.get $s)
        (select (local.get $len) (global.get $QUOTE_MAX)
                (i32.lt_u (local.get $len) (global.get $QUOTE_MAX)))))
    (call $err_byte (i32.const 0x22)) ;; "
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $p)))
        (block $hex
          (if (i32.ge_u (local.get $c) (i32.const 0x80))
            (then
              (local.set $n (call $utf8_len (local.get $p) (local.get $end)))
              (br_if $hex (i32.eqz (local.get $n)))
              (call $err_bytes (local.get $p) (local.get $n))
              (local.set $p (i32.add (local.get $p) (local.get $n)))
              (br $next)))
          (if (i32.or (i32.eq (local.get $c) (i32.const 0x22)) (i32.eq (local.get $c) (i32.const 0x5C)))
            (then ;; " or \
              (call $err_byte (i32.const 0x5C))
              (call $err_byte (local.get $c))
              (local.set $p (i32.add (local.get $p) (i32.const 1)))
              (br $next)))
          (if (i32.lt_u (i32.sub (local.get $c) (i32.const 0x20)) (i32.const 0x5F))
            (then ;; printable ASCII 0x20..0x7E
              (call $err_byte (local.get $c))
              (local.set $p (i32.add (local.get $p) (i32.const 1)))
              (br $next))))
        ;; \xNN
        (call $err_byte (i32.const 0x5C))
        (call $err_byte (i32.const 0x78))
        (call $err_byte (i32.load8_u offset=576 (i32.shr_u (local.get $c) (i32.const 4))))
        (call $err_byte (i32.load8_u offset=576 (i32.and (local.get $c) (i32.const 15))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $next)))
    (call $err_byte (i32.const 0x22)) ;; "
    (if (i32.gt_u (local.get $len) (i32.sub (local.get $p) (local.get $s)))
      (then (call $err_bytes (i32.const 640) (i32.const 3)))))

  ;; Points the frame's error fields at the message, clears out_count, returns status 1.
  (func $fail (param $f i32) (result i32)
    (i32.store offset=24 (local.get $f) (i32.const 0))
    (i32.store offset=48 (local.get $f) (global.get $ERR))
    (i32.store offset=52 (local.get $f) (global.get $err_len))
    (i32.const 1))

  ;; ---------------------------------------------------------------- flat_map split_words

  ;; Whitespace is space, \t, \n, \v, \f, \r (0x20, 0x09..0x0D): a byte c is whitespace when
  ;; c == 0x20 or c - 9 < 5 (unsigned). Every other byte, including any byte >= 0x80, is part of
  ;; a word. The test is written out in the two scanning loops below.
  (func (export "weft_flat_map_split_words") (param $f i32) (result i32)
    (local $n i32)
    (local $voff i32)
    (local $vdata i32)
    (local $r i32)
    (local $start i32)
    (local $stop i32)
    (local $len i32)
    (local $count i32)   ;; words so far
    (local $used i32)    ;; bytes of words so far
    (local $wdata i32)   ;; words' data buffer
    (local $woff i32)    ;; words' offsets buffer
    (local $out i32)     ;; where the next word's bytes go
    (local $offs i32)    ;; where the next word's end offset goes
    (local $p i32)
    (local $end i32)
    (local $word i32)
    (local $i i32)
    (local $ptr i32)
    (local $cap i32)
    (local $filled i32)
    (local $c i32)
    (local.set $n (i32.load (local.get $f)))
    (i32.store offset=24 (local.get $f) (i32.const 0))
    (if (i32.eqz (local.get $n)) (then (return (i32.const 0))))
    (local.set $voff (i32.load offset=12 (local.get $f)))
    (local.set $vdata (i32.load offset=16 (local.get $f)))

    (block $oom
      (br_if $oom (i32.eqz (call $reserve (global.get $WORDS_OFFSETS) (i64.const 4))))
      (i32.store (i32.load (global.get $WORDS_OFFSETS)) (i32.const 0))

      (local.set $r (i32.const 0))
      (loop $records
        (local.set $start (i32.load (i32.add (local.get $voff) (i32.shl (local.get $r) (i32.const 2)))))
        (local.set $stop (i32.load offset=4 (i32.add (local.get $voff) (i32.shl (local.get $r) (i32.const 2)))))
        (if (i32.gt_u (local.get $stop) (local.get $start))
          (then
            (local.set $len (i32.sub (local.get $stop) (local.get $start)))
            ;; A value of len bytes holds at most len word bytes and ceil(len / 2) words: make
            ;; room for the worst case once per record so the scan needs no checks.
            (br_if $oom (i32.eqz (call $reserve (global.get $WORDS_DATA)
              (i64.add (i64.extend_i32_u (local.get $used)) (i64.extend_i32_u (local.get $len))))))
            (br_if $oom (i32.eqz (call $reserve (global.get $WORDS_OFFSETS)
              (i64.shl
                (i64.add
                  (i64.add (i64.extend_i32_u (local.get $count)) (i64.const 1))
                  (i64.extend_i32_u
                    (i32.add (i32.shr_u (local.get $len) (i32.const 1))
                             (i32.and (local.get $len) (i32.const 1)))))
                (i64.const 2)))))
            (local.set $wdata (i32.load (global.get $WORDS_DATA)))
            (local.set $woff (i32.load (global.get $WORDS_OFFSETS)))
            (local.set $out (i32.add (local.get $wdata) (local.get $used)))
            (local.set $offs
              (i32.add (local.get $woff)
                       (i32.shl (i32.add (local.get $count) (i32.const 1)) (i32.const 2))))
            (local.set $p (i32.add (local.get $vdata) (local.get $start)))
            (local.set $end (i32.add (local.get $vdata) (local.get $stop)))
            (block $words_done
              (loop $words
                ;; skip whitespace
                (block $word_found
                  (loop $skip
                    (br_if $words_done (i32.eq (local.get $p) (local.get $end)))
                    (local.set $c (i32.load8_u (local.get $p)))
                    (br_if $word_found
                      (i32.eqz (i32.or (i32.eq (local.get $c) (i32.const 0x20))
                                       (i32.lt_u (i32.sub (local.get $c) (i32.const 0x09)) (i32.const 5)))))
                    (local.set $p (i32.add (local.get $p) (i32.const 1)))
                    (br $skip)))
                ;; the word runs to the next whitespace or the end of the value
                (local.set $word (local.get $p))
                (block $word_end
                  (loop $scan
                    (local.set $p (i32.add (local.get $p) (i32.const 1)))
                    (br_if $word_end (i32.eq (local.get $p) (local.get $end)))
                    (local.set $c (i32.load8_u (local.get $p)))
                    (br_if $scan
                      (i32.eqz (i32.or (i32.eq (local.get $c) (i32.const 0x20))
                                       (i32.lt_u (i32.sub (local.get $c) (i32.const 0x09)) (i32.const 5)))))))
                (memory.copy (local.get $out) (local.get $word)
                             (i32.sub (local.get $p) (local.get $word)))
                (local.set $out
                  (i32.add (local.get $out) (i32.sub (local.get $p) (local.get $word))))
                (i32.store (local.get $offs) (i32.sub (local.get $out) (local.get $wdata)))
                (local.set $offs (i32.add (local.get $offs) (i32.const 4)))
                (br $words)))
            (local.set $used (i32.sub (local.get $out) (local.get $wdata)))
            (local.set $count
              (i32.sub (i32.shr_u (i32.sub (local.get $offs) (local.get $woff)) (i32.const 2))
                       (i32.const 1)))))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br_if $records (i32.lt_u (local.get $r) (local.get $n))))

      ;; values: $count times "1"; the buffers are only written where they grew
      (br_if $oom (i32.eqz (call $reserve (global.get $ONES_DATA)
        (i64.extend_i32_u (select (local.get $count) (i32.const 1) (local.get $count))))))
      (local.set $ptr (i32.load (global.get $ONES_DATA)))
      (local.set $cap (i32.load offset=4 (global.get $ONES_DATA)))
      (local.set $filled (i32.load offset=8 (global.get $ONES_DATA)))
      (if (i32.lt_u (local.get $filled) (local.get $cap))
        (then
          (memory.fill (i32.add (local.get $ptr) (local.get $filled)) (i32.const 0x31)
                       (i32.sub (local.get $cap) (local.get $filled)))
          (i32.store offset=8 (global.get $ONES_DATA) (local.get $cap))))

      (br_if $oom (i32.eqz (call $reserve (global.get $ONES_OFFSETS)
        (i64.shl (i64.add (i64.extend_i32_u (local.get $count)) (i64.const 1)) (i64.const 2)))))
      (local.set $ptr (i32.load (global.get $ONES_OFFSETS)))
      (local.set $cap (i32.and (i32.load offset=4 (global.get $ONES_OFFSETS)) (i32.const -4)))
      (local.set $filled (i32.load offset=8 (global.get $ONES_OFFSETS)))
      (block $filled_all
        (loop $fill
          (br_if $filled_all (i32.ge_u (local.get $filled) (local.get $cap)))
          (i32.store (i32.add (local.get $ptr) (local.get $filled))
                     (i32.shr_u (local.get $filled) (i32.const 2)))
          (local.set $filled (i32.add (local.get $filled) (i32.const 4)))
          (br $fill)))
      (i32.store offset=8 (global.get $ONES_OFFSETS) (local.get $filled))

      (i32.store offset=24 (local.get $f) (local.get $count))
      (i32.store offset=28 (local.get $f) (i32.load (global.get $WORDS_OFFSETS)))
      (i32.store offset=32 (local.get $f) (i32.load (global.get $WORDS_DATA)))
      (i32.store offset=36 (local.get $f) (i32.load (global.get $ONES_OFFSETS)))
      (i32.store offset=40 (local.get $f) (i32.load (global.get $ONES_DATA)))
      (return (i32.const 0)))

    ;; out of memory
    (global.set $err_len (i32.const 0))
    (call $err_bytes (i32.const 448) (i32.const 59))
    (call $fail (local.get $f)))

  ;; ---------------------------------------------------------------- reduce sum

  (func (export "weft_reduce_sum") (param $f i32) (result i32)
    (local $n i32)
    (local $groups i32)
    (local $koff i32)
    (local $kdata i32)
    (local $voff i32)
    (local $vdata i32)
    (local $so i32)      ;; output offsets buffer
    (local $used i32)    ;; bytes of sums so far
    (local $g i32)
    (local $v i32)
    (local $vend i32)
    (local $val i32)     ;; current value
    (local $vlen i32)
    (local $i i32)
    (local $d i32)
    (local $big i32)
    (local $x i64)
    (local $sum i64)
    (local $q i32)
    (local $len i32)
    (local $kind i32)    ;; which error: 0 out of memory, 1 not decimal, 2 value too big, 3 sum overflow
    (local.set $n (i32.load (local.get $f)))
    (i32.store offset=24 (local.get $f) (i32.const 0))
    (if (i32.eqz (local.get $n)) (then (return (i32.const 0))))
    (local.set $koff (i32.load offset=4 (local.get $f)))
    (local.set $kdata (i32.load offset=8 (local.get $f)))
    (local.set $voff (i32.load offset=12 (local.get $f)))
    (local.set $vdata (i32.load offset=16 (local.get $f)))
    (local.set $groups (i32.load offset=20 (local.get $f)))

    (block $error
      (br_if $error (i32.eqz (call $reserve (global.get $SUM_OFFSETS)
        (i64.shl (i64.add (i64.extend_i32_u (local.get $n)) (i64.const 1)) (i64.const 2)))))
      (local.set $so (i32.load (global.get $SUM_OFFSETS)))
      (i32.store (local.get $so) (i32.const 0))

      (local.set $g (i32.const 0))
      (loop $each_group
        (local.set $sum (i64.const 0))
        (local.set $v (i32.load (i32.add (local.get $groups) (i32.shl (local.get $g) (i32.const 2)))))
        (local.set $vend (i32.load offset=4 (i32.add (local.get $groups) (i32.shl (local.get $g) (i32.const 2)))))
        (block $values_done
          (loop $each_value
            (br_if $values_done (i32.ge_u (local.get $v) (local.get $vend)))
            (local.set $val (i32.load (i32.add (local.get $voff) (i32.shl (local.get $v) (i32.const 2)))))
            (local.set $vlen
              (i32.sub (i32.load offset=4 (i32.add (local.get $voff) (i32.shl (local.get $v) (i32.const 2))))
                       (local.get $val)))
            (local.set $val (i32.add (local.get $vdata) (local.get $val)))
            (local.set $kind (i32.const 1))
            (br_if $error (i32.eqz (local.get $vlen)))
            ;; parse: ASCII digits only; overflow is noted but the digits are all checked first,
            ;; so that "99...9x" is reported as not a decimal
            (local.set $x (i64.const 0))
            (local.set $big (i32.const 0))
            (local.set $i (i32.const 0))
            (loop $each_digit
              (local.set $d (i32.sub (i32.load8_u (i32.add (local.get $val) (local.get $i))) (i32.const 0x30)))
              (br_if $error (i32.gt_u (local.get $d) (i32.const 9)))
              ;; x * 10 + d > 18446744073709551615 ?
              (if (i32.or
                    (i64.gt_u (local.get $x) (i64.const 1844674407370955161))
                    (i32.and (i64.eq (local.get $x) (i64.const 1844674407370955161))
                             (i32.gt_u (local.get $d) (i32.const 5))))
                (then (local.set $big (i32.const 1))))
              (local.set $x (i64.add (i64.mul (local.get $x) (i64.const 10)) (i64.extend_i32_u (local.get $d))))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $each_digit (i32.lt_u (local.get $i) (local.get $vlen))))
            (local.set $kind (i32.const 2))
            (br_if $error (local.get $big))
            (local.set $sum (i64.add (local.get $sum) (local.get $x)))
            (local.set $kind (i32.const 3))
            (br_if $error (i64.lt_u (local.get $sum) (local.get $x))) ;; carry out of the add
            (local.set $v (i32.add (local.get $v) (i32.const 1)))
            (br $each_value)))

        ;; decimal digits, no leading zeros, written backwards ending at $DIGITS_END
        (local.set $q (global.get $DIGITS_END))
        (loop $each_out_digit
          (local.set $q (i32.sub (local.get $q) (i32.const 1)))
          (i64.store8 (local.get $q) (i64.add (i64.rem_u (local.get $sum) (i64.const 10)) (i64.const 0x30)))
          (local.set $sum (i64.div_u (local.get $sum) (i64.const 10)))
          (br_if $each_out_digit (i64.ne (local.get $sum) (i64.const 0))))
        (local.set $len (i32.sub (global.get $DIGITS_END) (local.get $q)))
        (local.set $kind (i32.const 0))
        (br_if $error (i32.eqz (call $reserve (global.get $SUM_DATA)
          (i64.add (i64.extend_i32_u (local.get $used)) (i64.extend_i32_u (local.get $len))))))
        (memory.copy (i32.add (i32.load (global.get $SUM_DATA)) (local.get $used)) (local.get $q) (local.get $len))
        (local.set $used (i32.add (local.get $used) (local.get $len)))
        (local.set $g (i32.add (local.get $g) (i32.const 1)))
        (i32.store (i32.add (local.get $so) (i32.shl (local.get $g) (i32.const 2))) (local.get $used))
        (br_if $each_group (i32.lt_u (local.get $g) (local.get $n))))

      (i32.store offset=24 (local.get $f) (local.get $n))
      (i32.store offset=36 (local.get $f) (local.get $so))
      (i32.store offset=40 (local.get $f) (i32.load (global.get $SUM_DATA)))
      (return (i32.const 0)))

    ;; errors; $g, $val and $vlen say where
    (global.set $err_len (i32.const 0))
    (if (i32.eqz (local.get $kind))
      (then
        (call $err_bytes (i32.const 512) (i32.const 51))
        (return (call $fail (local.get $f)))))
    (local.set $i (i32.load (i32.add (local.get $koff) (i32.shl (local.get $g) (i32.const 2)))))
    (local.set $len
      (i32.sub (i32.load offset=4 (i32.add (local.get $koff) (i32.shl (local.get $g) (i32.const 2))))
               (local.get $i)))
    (local.set $i (i32.add (local.get $kdata) (local.get $i)))
    (if (i32.eq (local.get $kind) (i32.const 3))
      (then
        ;; sum: total for key "<key>" overflows u64 when adding value "<value>"
        (call $err_bytes (i32.const 320) (i32.const 19))
        (call $err_quote (local.get $i) (local.get $len))
        (call $err_bytes (i32.const 384) (i32.const 33))
        (call $err_quote (local.get $val) (local.get $vlen))
        (return (call $fail (local.get $f)))))
    ;; sum: value "<value>" for key "<key>" is not a decimal count (...) / does not fit in a u64 count
    (call $err_bytes (i32.const 64) (i32.const 11))
    (call $err_quote (local.get $val) (local.get $vlen))
    (call $err_bytes (i32.const 128) (i32.const 9))
    (call $err_quote (local.get $i) (local.get $len))
    (if (i32.eq (local.get $kind) (i32.const 1))
      (then (call $err_bytes (i32.const 192) (i32.const 52)))
      (else (call $err_bytes (i32.const 256) (i32.const 28))))
    (call $fail (local.get $f)))
)
