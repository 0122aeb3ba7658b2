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

/// The encoding an XML declaration at the start names (`<?xml ... encoding="ISO-8859-1"?>`).
pub fn declared_encoding(head: &[u8]) -> Option<&'static encoding_rs::Encoding> {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let decl_end = head.windows(2).position(|w| w == b"?>")?;
    let decl = head
        .get(..decl_end)?
        .trim_ascii_start()
        .strip_prefix(b"<?xml")?;
    let at = decl.windows(8).position(|w| w == b"encoding")?;
    let rest = decl[at + 8..]
        .trim_ascii_start()
        .strip_prefix(b"=")?
        .trim_ascii_start();
    let quote = *rest.first()?;
    let value = &rest[1..];
    let end = value.iter().position(|&b| b == quote)?;
    encoding_rs::Encoding::for_label(&value[..end])
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

    #[test]
    fn reads_the_declared_encoding() {
        let latin1 = declared_encoding(b"<?xml version='1.0' encoding='ISO-8859-1' ?><a/>");
        assert_eq!(latin1.map(|e| e.name()), Some("windows-1252"));
        assert_eq!(declared_encoding(b"<?xml version=\"1.0\"?><a/>"), None);
        assert_eq!(declared_encoding(b"<a encoding='latin1'/>"), None);
    }
}
