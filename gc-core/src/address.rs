//! Typed addresses. `Address` is a plain machine address; `Page` is a page-aligned one.

use crate::util::mmap::{BYTES_IN_PAGE, LOG_BYTES_IN_PAGE};
use std::fmt;

/// A machine address in this process.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Address(usize);

impl Address {
    /// The address with value `raw`.
    pub const fn from_usize(raw: usize) -> Address {
        Address(raw)
    }

    /// The address of a pointer.
    pub fn from_ptr<T>(p: *const T) -> Address {
        Address(p as usize)
    }

    /// The numeric value.
    pub const fn as_usize(self) -> usize {
        self.0
    }

    /// As a raw pointer.
    pub const fn to_ptr<T>(self) -> *mut T {
        self.0 as *mut T
    }

    /// `self + bytes`.
    pub const fn plus(self, bytes: usize) -> Address {
        Address(self.0 + bytes)
    }

    /// Bytes from `earlier` to `self`.
    pub const fn diff(self, earlier: Address) -> usize {
        self.0 - earlier.0
    }

    /// The page that contains this address.
    pub const fn page(self) -> Page {
        Page(self.0 & !(BYTES_IN_PAGE - 1))
    }

    /// True if a multiple of `align` (a power of two).
    pub const fn is_aligned_to(self, align: usize) -> bool {
        self.0 & (align - 1) == 0
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A page-aligned address: the start of a 4 KiB page.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Page(usize);

impl Page {
    /// The page containing `addr`.
    pub const fn containing(addr: Address) -> Page {
        addr.page()
    }

    /// The page starting at `raw`, which must be page-aligned.
    pub const fn from_aligned(raw: usize) -> Page {
        assert!(raw & (BYTES_IN_PAGE - 1) == 0, "page address not aligned");
        Page(raw)
    }

    /// First byte of the page.
    pub const fn start(self) -> Address {
        Address(self.0)
    }

    /// The page `n` pages later.
    pub const fn plus_pages(self, n: usize) -> Page {
        Page(self.0 + (n << LOG_BYTES_IN_PAGE))
    }

    /// The page number (address / page size).
    pub const fn number(self) -> usize {
        self.0 >> LOG_BYTES_IN_PAGE
    }
}

impl fmt::Debug for Page {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Page({:#x})", self.0)
    }
}

/// A run of whole pages `[start, start + n_pages)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PageRange {
    /// First page.
    pub start: Page,
    /// Number of pages.
    pub n_pages: usize,
}

impl PageRange {
    /// The pages from `start` to `end` (exclusive); both page-aligned.
    pub fn new(start: Page, n_pages: usize) -> PageRange {
        PageRange { start, n_pages }
    }

    /// One past the last byte.
    pub fn end(&self) -> Address {
        self.start.plus_pages(self.n_pages).start()
    }

    /// Length in bytes.
    pub fn len_bytes(&self) -> usize {
        self.n_pages << LOG_BYTES_IN_PAGE
    }

    /// True if `page` lies in the range.
    pub fn contains(&self, page: Page) -> bool {
        page >= self.start && page.start() < self.end()
    }

    /// The pages, one by one.
    pub fn pages(&self) -> impl Iterator<Item = Page> + '_ {
        (0..self.n_pages).map(|i| self.start.plus_pages(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_arithmetic() {
        let a = Address::from_usize(0x12345);
        assert_eq!(a.page().start().as_usize(), 0x12000);
        let r = PageRange::new(Page::from_aligned(0x10000), 4);
        assert_eq!(r.end().as_usize(), 0x14000);
        assert!(r.contains(Page::from_aligned(0x13000)));
        assert!(!r.contains(Page::from_aligned(0x14000)));
        assert_eq!(r.pages().count(), 4);
    }
}
