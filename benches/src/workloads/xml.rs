//! XML on gc-core, allocation for allocation the same as `benches/c/xml.c`: generate a
//! document of several MB as a string, parse it into a DOM of GC-allocated nodes, query
//! it, drop it; 4 rounds.
//!
//! The document is `scale * 1000` `<item>` elements under `<catalog>`; item i has kind
//! alpha/beta/gamma (i % 3), a `<name>` with an entity, a `<price>` ((i * 37) % 1000),
//! `<tags>` with i % 4 `<tag>` children, and every fifth item an empty `<flag/>`.
//! Queries: count all elements; count beta items and sum their prices; find the middle
//! item by id and check its decoded name. Checksum: (elements + beta items) summed over
//! the rounds.

use super::Allocator;
use std::io::Write as _;

const N_ROUNDS: u32 = 4;

/// The scales the C code accepts.
pub const SCALES: std::ops::RangeInclusive<u32> = 1..=10_000;

const KINDS: [&[u8]; 3] = [b"alpha", b"beta", b"gamma"];

/// The bytes of the NUL-terminated string at `s` (non-null), without the NUL.
#[inline]
fn c_bytes<'a>(s: *const u8) -> &'a [u8] {
    // SAFETY: every string this workload keeps (document, names, values, texts) is
    // NUL-terminated and live while the caller uses the slice.
    unsafe { std::ffi::CStr::from_ptr(s.cast()) }.to_bytes()
}

/// The byte at `p + i`.
#[inline]
fn at(p: *const u8, i: usize) -> u8 {
    // SAFETY: the parser reads the live, NUL-terminated document and never past its
    // NUL: every scan stops at NUL, and `p + 1` is read only after `*p` was found to be
    // a non-NUL byte (and `p + n` only after `p .. p + n` matched a NUL-free name).
    unsafe { *p.add(i) }
}

// ---- generation: a growable pointer-free string ----

struct StrBuf<A: Allocator> {
    alloc: A,
    buf: *mut u8,
    len: usize,
    cap: usize,
}

impl<A: Allocator> StrBuf<A> {
    fn put(&mut self, s: &[u8]) {
        if self.len + s.len() + 1 > self.cap {
            let mut cap = if self.cap > 0 { self.cap * 2 } else { 4096 };
            while cap < self.len + s.len() + 1 {
                cap *= 2;
            }
            self.buf = self.alloc.realloc_atomic(self.buf as usize, self.cap, cap) as *mut u8;
            self.cap = cap;
        }
        // SAFETY: len + s.len() + 1 <= cap, the buffer's length; `s` is not in it.
        unsafe {
            std::ptr::copy_nonoverlapping(s.as_ptr(), self.buf.add(self.len), s.len());
            self.len += s.len();
            *self.buf.add(self.len) = 0;
        }
    }

    /// `snprintf` into a small stack buffer, then `put` (as the C side's `sb_printf`).
    fn printf(&mut self, args: std::fmt::Arguments<'_>) {
        let mut tmp = [0u8; 128];
        let mut cursor = std::io::Cursor::new(&mut tmp[..]);
        cursor
            .write_fmt(args)
            .expect("the generator's pieces are shorter than 128 bytes");
        let n = cursor.position() as usize;
        self.put(&tmp[..n]);
    }
}

fn generate<A: Allocator>(alloc: A, n_items: u64, round: u32) -> *mut u8 {
    let mut sb = StrBuf {
        alloc,
        buf: alloc.malloc_atomic(4096) as *mut u8,
        len: 0,
        cap: 4096,
    };
    sb.printf(format_args!(
        "<?xml version=\"1.0\"?>\n<catalog round=\"{round}\">\n"
    ));
    for i in 0..n_items {
        sb.printf(format_args!("  <item id=\"{i}\" kind=\""));
        sb.put(KINDS[(i % 3) as usize]);
        sb.printf(format_args!(
            "\"><name>Item &amp; number {i}</name><price>{}</price><tags>",
            (i * 37) % 1000
        ));
        for t in 0..i % 4 {
            sb.printf(format_args!("<tag>t{t}</tag>"));
        }
        sb.put(b"</tags>");
        if i % 5 == 0 {
            sb.put(b"<flag/>");
        }
        sb.put(b"</item>\n");
    }
    sb.put(b"</catalog>\n");
    sb.buf
}

// ---- the DOM and its parser ----

/// An attribute (24 bytes).
#[repr(C)]
struct Attr {
    next: *mut Attr,
    name: *mut u8,
    value: *mut u8,
}

/// An element (56 bytes).
#[repr(C)]
struct XNode {
    name: *mut u8,
    attrs: *mut Attr,
    parent: *mut XNode,
    first_child: *mut XNode,
    last_child: *mut XNode,
    next_sibling: *mut XNode,
    /// Decoded character data directly inside, or null.
    text: *mut u8,
}

/// The node at `n` (non-null).
#[inline]
fn node<'a>(n: *mut XNode) -> &'a mut XNode {
    // SAFETY: `n` is a live node of the DOM being built or queried by this single
    // thread; callers hold no other reference to the same node while using this one.
    unsafe { &mut *n }
}

/// The attribute at `a` (non-null).
#[inline]
fn attr_at<'a>(a: *mut Attr) -> &'a mut Attr {
    // SAFETY: as in `node`, for a live attribute.
    unsafe { &mut *a }
}

struct Parser<A: Allocator> {
    alloc: A,
    p: *const u8,
    error: bool,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\t' | b'\r')
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b':' | b'.')
}

impl<A: Allocator> Parser<A> {
    #[inline]
    fn peek(&self, i: usize) -> u8 {
        at(self.p, i)
    }

    #[inline]
    fn advance(&mut self, n: usize) {
        // SAFETY: the bytes skipped were read (and are not past the NUL), see `at`.
        self.p = unsafe { self.p.add(n) };
    }

    /// Bytes from `s` to the current position.
    #[inline]
    fn since(&self, s: *const u8) -> usize {
        self.p as usize - s as usize
    }

    fn skip_space(&mut self) {
        while is_space(self.peek(0)) {
            self.advance(1);
        }
    }

    fn copy_str(&self, s: *const u8, n: usize) -> *mut u8 {
        let c = self.alloc.malloc_atomic(n + 1) as *mut u8;
        // SAFETY: `s .. s + n` is inside the document; `c` is fresh with n + 1 bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(s, c, n);
            *c.add(n) = 0;
        }
        c
    }

    /// Copy `s .. s + n` decoding the five predefined entities.
    fn decode(&self, s: *const u8, n: usize) -> *mut u8 {
        const ENTS: [(&[u8], u8); 5] = [
            (b"&amp;", b'&'),
            (b"&lt;", b'<'),
            (b"&gt;", b'>'),
            (b"&quot;", b'"'),
            (b"&apos;", b'\''),
        ];
        let c = self.alloc.malloc_atomic(n + 1) as *mut u8;
        // SAFETY: `s .. s + n` is inside the live document.
        let src = unsafe { std::slice::from_raw_parts(s, n) };
        // SAFETY: `c` is a fresh allocation of n + 1 bytes, aliased by nothing else.
        let out = unsafe { std::slice::from_raw_parts_mut(c, n + 1) };
        let (mut i, mut o) = (0, 0);
        while i < n {
            let mut done = false;
            if src[i] == b'&' {
                for (ent, ch) in ENTS {
                    if src[i..].starts_with(ent) {
                        out[o] = ch;
                        o += 1;
                        i += ent.len();
                        done = true;
                        break;
                    }
                }
            }
            if !done {
                out[o] = src[i];
                o += 1;
                i += 1;
            }
        }
        out[o] = 0;
        c
    }

    fn parse_name(&mut self) -> *mut u8 {
        let s = self.p;
        while is_name_char(self.peek(0)) {
            self.advance(1);
        }
        if self.p == s {
            self.error = true;
            return std::ptr::null_mut();
        }
        self.copy_str(s, self.since(s))
    }

    /// Parse the content of `el` up to and including its end tag.
    fn parse_content(&mut self, el: *mut XNode) {
        while !self.error {
            let s = self.p;
            while self.peek(0) != 0 && self.peek(0) != b'<' {
                self.advance(1);
            }
            let n = self.since(s);
            if n > 0 {
                let mut q = 0;
                while q < n && is_space(at(s, q)) {
                    q += 1;
                }
                if q < n && node(el).text.is_null() {
                    let text = self.decode(s, n);
                    node(el).text = text;
                }
            }
            if self.peek(0) == 0 {
                self.error = true;
                return;
            }
            if self.peek(1) == b'/' {
                let name = c_bytes(node(el).name);
                self.advance(2);
                let n = name.len();
                let matches = name.iter().enumerate().all(|(i, &b)| self.peek(i) == b);
                if !matches || self.peek(n) != b'>' {
                    self.error = true;
                    return;
                }
                self.advance(n + 1);
                return;
            }
            self.parse_element(el);
        }
    }

    fn parse_element(&mut self, parent: *mut XNode) -> *mut XNode {
        if self.peek(0) != b'<' {
            self.error = true;
            return std::ptr::null_mut();
        }
        self.advance(1);
        let el = self.alloc.malloc(std::mem::size_of::<XNode>()) as *mut XNode;
        node(el).parent = parent;
        if !parent.is_null() {
            let p = node(parent);
            if p.last_child.is_null() {
                p.first_child = el;
            } else {
                node(p.last_child).next_sibling = el;
            }
            p.last_child = el;
        }
        let name = self.parse_name();
        node(el).name = name;
        loop {
            self.skip_space();
            if self.error || self.peek(0) == b'>' || self.peek(0) == b'/' {
                break;
            }
            let a = self.alloc.malloc(std::mem::size_of::<Attr>()) as *mut Attr;
            let name = self.parse_name();
            attr_at(a).name = name;
            if self.error || self.peek(0) != b'=' || self.peek(1) != b'"' {
                self.error = true;
                return std::ptr::null_mut();
            }
            self.advance(2);
            let v = self.p;
            while self.peek(0) != 0 && self.peek(0) != b'"' {
                self.advance(1);
            }
            if self.peek(0) != b'"' {
                self.error = true;
                return std::ptr::null_mut();
            }
            let value = self.decode(v, self.since(v));
            attr_at(a).value = value;
            self.advance(1);
            attr_at(a).next = node(el).attrs;
            node(el).attrs = a;
        }
        if self.error {
            return std::ptr::null_mut();
        }
        if self.peek(0) == b'/' && self.peek(1) == b'>' {
            self.advance(2);
            return el;
        }
        self.advance(1); // '>'
        self.parse_content(el);
        el
    }
}

fn parse_document<A: Allocator>(alloc: A, doc: *const u8) -> *mut XNode {
    let mut ps = Parser {
        alloc,
        p: doc,
        error: false,
    };
    if ps.peek(0) == b'<' && ps.peek(1) == b'?' {
        let rest = c_bytes(doc);
        let Some(end) = rest.windows(2).position(|w| w == b"?>") else {
            return std::ptr::null_mut();
        };
        ps.advance(end + 2);
    }
    ps.skip_space();
    let root = ps.parse_element(std::ptr::null_mut());
    if ps.error {
        std::ptr::null_mut()
    } else {
        root
    }
}

// ---- queries ----

fn attr(n: *mut XNode, name: &[u8]) -> Option<*mut u8> {
    let mut a = node(n).attrs;
    while !a.is_null() {
        let at = attr_at(a);
        if c_bytes(at.name) == name {
            return Some(at.value);
        }
        a = at.next;
    }
    None
}

fn child(n: *mut XNode, name: &[u8]) -> Option<*mut XNode> {
    let mut c = node(n).first_child;
    while !c.is_null() {
        if c_bytes(node(c).name) == name {
            return Some(c);
        }
        c = node(c).next_sibling;
    }
    None
}

fn count_elements(n: *mut XNode) -> u64 {
    let mut count = 1;
    let mut c = node(n).first_child;
    while !c.is_null() {
        count += count_elements(c);
        c = node(c).next_sibling;
    }
    count
}

/// The elements the generator wrote.
fn expected_elements(n_items: u64) -> u64 {
    1 + (0..n_items)
        .map(|i| 4 + i % 4 + u64::from(i % 5 == 0))
        .sum::<u64>()
}

/// `strtoull(s, NULL, 10)` for the unsigned decimals this workload writes.
fn parse_u64(s: &[u8]) -> u64 {
    s.iter()
        .skip_while(|b| is_space(**b))
        .take_while(|b| b.is_ascii_digit())
        .fold(0u64, |n, &b| {
            n.wrapping_mul(10).wrapping_add(u64::from(b - b'0'))
        })
}

/// Free a DOM (explicit-free allocators only).
fn free_dom<A: Allocator>(alloc: A, n: *mut XNode) {
    let mut c = node(n).first_child;
    while !c.is_null() {
        let next = node(c).next_sibling;
        free_dom(alloc, c);
        c = next;
    }
    let mut a = node(n).attrs;
    while !a.is_null() {
        let at = attr_at(a);
        let next = at.next;
        alloc.free(at.name as usize);
        alloc.free(at.value as usize);
        alloc.free(a as usize);
        a = next;
    }
    let el = node(n);
    alloc.free(el.name as usize);
    if !el.text.is_null() {
        alloc.free(el.text as usize);
    }
    alloc.free(n as usize);
}

/// Run XML at `scale` (thousands of items per document). Returns (elements + beta items)
/// over the rounds, or an error if a query disagreed with the generator.
pub fn run<A: Allocator>(alloc: A, scale: u32) -> Result<u64, String> {
    if !SCALES.contains(&scale) {
        return Err(format!("xml scale {scale} outside {SCALES:?}"));
    }
    let n_items = u64::from(scale) * 1000;
    let mut checksum = 0;
    for round in 0..N_ROUNDS {
        let doc = generate(alloc, n_items, round);
        let root = parse_document(alloc, doc);
        if A::FREES {
            alloc.free(doc as usize);
        }
        // The text is garbage once parsed (nothing refers to `doc` from here on).
        if root.is_null() || c_bytes(node(root).name) != b"catalog" {
            return Err(format!("xml round {round}: the document did not parse"));
        }

        let elements = count_elements(root);
        let mid = n_items / 2;
        let (mut beta, mut price_sum) = (0u64, 0u64);
        let mut found: *mut XNode = std::ptr::null_mut();
        let mut item = node(root).first_child;
        while !item.is_null() {
            let (Some(kind), Some(id), Some(price)) = (
                attr(item, b"kind"),
                attr(item, b"id"),
                child(item, b"price"),
            ) else {
                return Err(format!(
                    "xml round {round}: an item lacks kind, id or price"
                ));
            };
            let price_text = node(price).text;
            if price_text.is_null() {
                return Err(format!("xml round {round}: a price has no text"));
            }
            if c_bytes(kind) == b"beta" {
                beta += 1;
                price_sum += parse_u64(c_bytes(price_text));
            }
            if parse_u64(c_bytes(id)) == mid {
                found = item;
            }
            item = node(item).next_sibling;
        }
        let want_sum: u64 = (1..n_items).step_by(3).map(|i| (i * 37) % 1000).sum();
        let mut want_name = [0u8; 64];
        let mut cursor = std::io::Cursor::new(&mut want_name[..]);
        write!(cursor, "Item & number {mid}").expect("fits in 64 bytes");
        let name_len = cursor.position() as usize;
        let want_name = &want_name[..name_len];
        let name_ok = !found.is_null()
            && child(found, b"name")
                .map(|n| node(n).text)
                .is_some_and(|t| !t.is_null() && c_bytes(t) == want_name);
        if elements != expected_elements(n_items) || price_sum != want_sum || !name_ok {
            return Err(format!(
                "xml round {round}: {elements} elements (want {}), price sum {price_sum} \
                 (want {want_sum}), middle item name ok: {name_ok}",
                expected_elements(n_items)
            ));
        }
        checksum += elements + beta;
        if A::FREES {
            free_dom(alloc, root);
        }
    }
    Ok(checksum)
}
