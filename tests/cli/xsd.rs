//! XML Schema validation with the system's libxml2 (Debian's `libxml2-dev`) through its C API.
//!
//! The `libxml` crate would run bindgen at build time, which needs libclang (not on CI's
//! machine) and compiles for a minute; these few functions of libxml2's stable schema API need
//! only the library itself.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::Path;
use std::ptr;
use std::sync::Once;

#[repr(C)]
struct SchemaParserCtxt {
    _opaque: [u8; 0],
}
#[repr(C)]
struct Schema {
    _opaque: [u8; 0],
}
#[repr(C)]
struct SchemaValidCtxt {
    _opaque: [u8; 0],
}
#[repr(C)]
struct Doc {
    _opaque: [u8; 0],
}

/// The leading fields of libxml2's `xmlError`, whose layout has not changed since 2.6; only
/// these are read, through a pointer libxml2 owns.
#[repr(C)]
struct XmlError {
    domain: c_int,
    code: c_int,
    message: *const c_char,
    level: c_int,
    file: *const c_char,
    line: c_int,
}

type ErrorHandler = unsafe extern "C" fn(*mut c_void, *const XmlError);

/// `XML_PARSE_NONET`: the document may not make libxml2 fetch anything.
const PARSE_NONET: c_int = 1 << 11;
/// `XML_ERR_ERROR`: levels below are warnings.
const LEVEL_ERROR: c_int = 2;

#[link(name = "xml2")]
unsafe extern "C" {
    fn xmlInitParser();
    fn xmlSetStructuredErrorFunc(data: *mut c_void, handler: Option<ErrorHandler>);
    fn xmlSchemaNewParserCtxt(url: *const c_char) -> *mut SchemaParserCtxt;
    fn xmlSchemaSetParserStructuredErrors(
        ctxt: *mut SchemaParserCtxt,
        handler: ErrorHandler,
        data: *mut c_void,
    );
    fn xmlSchemaParse(ctxt: *mut SchemaParserCtxt) -> *mut Schema;
    fn xmlSchemaFreeParserCtxt(ctxt: *mut SchemaParserCtxt);
    fn xmlSchemaFree(schema: *mut Schema);
    fn xmlSchemaNewValidCtxt(schema: *mut Schema) -> *mut SchemaValidCtxt;
    fn xmlSchemaSetValidStructuredErrors(
        ctxt: *mut SchemaValidCtxt,
        handler: ErrorHandler,
        data: *mut c_void,
    );
    fn xmlSchemaValidateDoc(ctxt: *mut SchemaValidCtxt, doc: *mut Doc) -> c_int;
    fn xmlSchemaFreeValidCtxt(ctxt: *mut SchemaValidCtxt);
    fn xmlReadMemory(
        buffer: *const c_char,
        size: c_int,
        url: *const c_char,
        encoding: *const c_char,
        options: c_int,
    ) -> *mut Doc;
    fn xmlFreeDoc(doc: *mut Doc);
}

/// Appends an error (not a warning) to the `Vec<String>` behind `data`, with its line.
unsafe extern "C" fn collect(data: *mut c_void, error: *const XmlError) {
    if data.is_null() || error.is_null() {
        return;
    }
    // SAFETY: `data` is the `Vec<String>` that `validate` handed libxml2 for this call, and
    // `error` points to libxml2's error record for the duration of the callback.
    let (errors, error) = unsafe { (&mut *data.cast::<Vec<String>>(), &*error) };
    if error.level < LEVEL_ERROR {
        return;
    }
    let message = if error.message.is_null() {
        "(no message)".to_string()
    } else {
        // SAFETY: libxml2's message is a NUL-terminated C string.
        unsafe { CStr::from_ptr(error.message) }
            .to_string_lossy()
            .trim_end()
            .to_string()
    };
    errors.push(format!("line {}: {message}", error.line));
}

/// Validates `xml` against the schema in the file `xsd`: `Ok`, or every error libxml2 reported
/// (a document that is not well-formed XML included). Panics if the schema itself is unusable.
pub fn validate(xsd: &Path, xml: &str) -> Result<(), Vec<String>> {
    static INIT: Once = Once::new();
    // SAFETY: libxml2 asks for one initialisation before it is used from several threads.
    INIT.call_once(|| unsafe { xmlInitParser() });
    let path = CString::new(xsd.to_str().expect("a UTF-8 schema path")).expect("no NUL");
    let size = c_int::try_from(xml.len()).expect("a document under 2 GiB");
    let sink: *mut Vec<String> = Box::into_raw(Box::new(Vec::new()));
    let data = sink.cast::<c_void>();
    // SAFETY: every pointer passed is valid for the call (the CStrings and `xml` outlive it),
    // `sink` is only written by `collect` during these calls, each object libxml2 returns is
    // checked for null and freed exactly once, and the thread's error handler is reset before
    // `sink` is freed.
    let status = unsafe {
        let parser = xmlSchemaNewParserCtxt(path.as_ptr());
        assert!(!parser.is_null(), "libxml2 could not start parsing {xsd:?}");
        xmlSchemaSetParserStructuredErrors(parser, collect, data);
        let schema = xmlSchemaParse(parser);
        xmlSchemaFreeParserCtxt(parser);
        assert!(
            !schema.is_null() && (*sink).is_empty(),
            "the schema {xsd:?} does not parse: {:?}",
            *sink
        );
        xmlSetStructuredErrorFunc(data, Some(collect));
        let doc = xmlReadMemory(
            xml.as_ptr().cast(),
            size,
            c"document.xml".as_ptr(),
            ptr::null(),
            PARSE_NONET,
        );
        xmlSetStructuredErrorFunc(ptr::null_mut(), None);
        let status = if doc.is_null() {
            (*sink).push("the document is not well-formed XML".to_string());
            -1
        } else {
            let valid = xmlSchemaNewValidCtxt(schema);
            assert!(!valid.is_null(), "libxml2 could not start validating");
            xmlSchemaSetValidStructuredErrors(valid, collect, data);
            let status = xmlSchemaValidateDoc(valid, doc);
            xmlSchemaFreeValidCtxt(valid);
            xmlFreeDoc(doc);
            status
        };
        xmlSchemaFree(schema);
        status
    };
    // SAFETY: `sink` came from `Box::into_raw` above and libxml2 no longer holds it.
    let errors = *unsafe { Box::from_raw(sink) };
    match (status, errors.is_empty()) {
        (0, true) => Ok(()),
        (_, true) => Err(vec![format!("libxml2 returned {status} without a message")]),
        _ => Err(errors),
    }
}
