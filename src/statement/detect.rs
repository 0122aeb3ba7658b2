//! Recognising an input's format from its first bytes, never from its name.

/// The formats an input can be.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    /// XML; the camt reader decides whether it is a camt.052/053/054 document.
    Xml,
    /// Not a format we read.
    Unknown,
}

/// Looks at the start of a file: byte-order marks and white space are skipped.
pub fn sniff(head: &[u8]) -> Format {
    let head = head
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(head)
        .trim_ascii_start();
    if head.starts_with(b"<") {
        Format::Xml
    } else {
        Format::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_with_bom_and_space_is_xml() {
        assert_eq!(sniff(b"\xEF\xBB\xBF  \n<?xml"), Format::Xml);
        assert_eq!(sniff(b"<Document>"), Format::Xml);
        assert_eq!(sniff(b"booking_date,amount"), Format::Unknown);
        assert_eq!(sniff(b"\x00\x01\x02"), Format::Unknown);
    }
}
