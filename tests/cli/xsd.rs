//! XML Schema validation with the system's libxml2 (its runtime library, `libxml2.so.2`)
//! through its C API.
//!
//! The `libxml` crate would run bindgen at build time, which needs libclang (not on CI's
//! machine) and compiles for a minute; these few functions of libxml2's stable schema API need
//! only the library itself, loaded when a test first validates.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::Path;
use std::ptr;
use std::sync::{Once, OnceLock};

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

/// The few functions of libxml2 the tests use, loaded from the system's `libxml2.so.2` when a
/// test first validates: no build-time dependency, so a machine without libxml2 builds and runs
/// every other test, and these fail saying what to install.
#[allow(non_snake_case)]
struct LibXml2 {
    xmlInitParser: unsafe extern "C" fn(),
    xmlSetStructuredErrorFunc: unsafe extern "C" fn(*mut c_void, Option<ErrorHandler>),
    xmlSchemaNewParserCtxt: unsafe extern "C" fn(*const c_char) -> *mut SchemaParserCtxt,
    xmlSchemaSetParserStructuredErrors:
        unsafe extern "C" fn(*mut SchemaParserCtxt, ErrorHandler, *mut c_void),
    xmlSchemaParse: unsafe extern "C" fn(*mut SchemaParserCtxt) -> *mut Schema,
    xmlSchemaFreeParserCtxt: unsafe extern "C" fn(*mut SchemaParserCtxt),
    xmlSchemaFree: unsafe extern "C" fn(*mut Schema),
    xmlSchemaNewValidCtxt: unsafe extern "C" fn(*mut Schema) -> *mut SchemaValidCtxt,
    xmlSchemaSetValidStructuredErrors:
        unsafe extern "C" fn(*mut SchemaValidCtxt, ErrorHandler, *mut c_void),
    xmlSchemaValidateDoc: unsafe extern "C" fn(*mut SchemaValidCtxt, *mut Doc) -> c_int,
    xmlSchemaFreeValidCtxt: unsafe extern "C" fn(*mut SchemaValidCtxt),
    xmlReadMemory:
        unsafe extern "C" fn(*const c_char, c_int, *const c_char, *const c_char, c_int) -> *mut Doc,
    xmlFreeDoc: unsafe extern "C" fn(*mut Doc),
    _library: libloading::Library,
}

fn libxml2() -> &'static LibXml2 {
    static LIBRARY: OnceLock<LibXml2> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        // SAFETY: loading libxml2 runs only its initialisers, and each symbol is taken with the
        // signature of libxml2's stable C API (include/libxml/xmlschemas.h, parser.h, xmlerror.h).
        unsafe {
            let lib = libloading::Library::new("libxml2.so.2").unwrap_or_else(|e| {
                panic!(
                    "the XML Schema tests need the system's libxml2 \
                     (Debian: apt-get install -y libxml2): {e}"
                )
            });
            LibXml2 {
                xmlInitParser: *lib
                    .get(b"xmlInitParser\0")
                    .expect("xmlInitParser in libxml2"),
                xmlSetStructuredErrorFunc: *lib
                    .get(b"xmlSetStructuredErrorFunc\0")
                    .expect("xmlSetStructuredErrorFunc in libxml2"),
                xmlSchemaNewParserCtxt: *lib
                    .get(b"xmlSchemaNewParserCtxt\0")
                    .expect("xmlSchemaNewParserCtxt in libxml2"),
                xmlSchemaSetParserStructuredErrors: *lib
                    .get(b"xmlSchemaSetParserStructuredErrors\0")
                    .expect("xmlSchemaSetParserStructuredErrors in libxml2"),
                xmlSchemaParse: *lib
                    .get(b"xmlSchemaParse\0")
                    .expect("xmlSchemaParse in libxml2"),
                xmlSchemaFreeParserCtxt: *lib
                    .get(b"xmlSchemaFreeParserCtxt\0")
                    .expect("xmlSchemaFreeParserCtxt in libxml2"),
                xmlSchemaFree: *lib
                    .get(b"xmlSchemaFree\0")
                    .expect("xmlSchemaFree in libxml2"),
                xmlSchemaNewValidCtxt: *lib
                    .get(b"xmlSchemaNewValidCtxt\0")
                    .expect("xmlSchemaNewValidCtxt in libxml2"),
                xmlSchemaSetValidStructuredErrors: *lib
                    .get(b"xmlSchemaSetValidStructuredErrors\0")
                    .expect("xmlSchemaSetValidStructuredErrors in libxml2"),
                xmlSchemaValidateDoc: *lib
                    .get(b"xmlSchemaValidateDoc\0")
                    .expect("xmlSchemaValidateDoc in libxml2"),
                xmlSchemaFreeValidCtxt: *lib
                    .get(b"xmlSchemaFreeValidCtxt\0")
                    .expect("xmlSchemaFreeValidCtxt in libxml2"),
                xmlReadMemory: *lib
                    .get(b"xmlReadMemory\0")
                    .expect("xmlReadMemory in libxml2"),
                xmlFreeDoc: *lib.get(b"xmlFreeDoc\0").expect("xmlFreeDoc in libxml2"),
                _library: lib,
            }
        }
    })
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
    let xml2 = libxml2();
    static INIT: Once = Once::new();
    // SAFETY: libxml2 asks for one initialisation before it is used from several threads.
    INIT.call_once(|| unsafe { (xml2.xmlInitParser)() });
    let path = CString::new(xsd.to_str().expect("a UTF-8 schema path")).expect("no NUL");
    let size = c_int::try_from(xml.len()).expect("a document under 2 GiB");
    let sink: *mut Vec<String> = Box::into_raw(Box::new(Vec::new()));
    let data = sink.cast::<c_void>();
    // SAFETY: every pointer passed is valid for the call (the CStrings and `xml` outlive it),
    // `sink` is only written by `collect` during these calls, each object libxml2 returns is
    // checked for null and freed exactly once, and the thread's error handler is reset before
    // `sink` is freed.
    let status = unsafe {
        let parser = (xml2.xmlSchemaNewParserCtxt)(path.as_ptr());
        assert!(!parser.is_null(), "libxml2 could not start parsing {xsd:?}");
        (xml2.xmlSchemaSetParserStructuredErrors)(parser, collect, data);
        let schema = (xml2.xmlSchemaParse)(parser);
        (xml2.xmlSchemaFreeParserCtxt)(parser);
        assert!(
            !schema.is_null() && (*sink).is_empty(),
            "the schema {xsd:?} does not parse: {:?}",
            *sink
        );
        (xml2.xmlSetStructuredErrorFunc)(data, Some(collect));
        let doc = (xml2.xmlReadMemory)(
            xml.as_ptr().cast(),
            size,
            c"document.xml".as_ptr(),
            ptr::null(),
            PARSE_NONET,
        );
        (xml2.xmlSetStructuredErrorFunc)(ptr::null_mut(), None);
        let status = if doc.is_null() {
            (*sink).push("the document is not well-formed XML".to_string());
            -1
        } else {
            let valid = (xml2.xmlSchemaNewValidCtxt)(schema);
            assert!(!valid.is_null(), "libxml2 could not start validating");
            (xml2.xmlSchemaSetValidStructuredErrors)(valid, collect, data);
            let status = (xml2.xmlSchemaValidateDoc)(valid, doc);
            (xml2.xmlSchemaFreeValidCtxt)(valid);
            (xml2.xmlFreeDoc)(doc);
            status
        };
        (xml2.xmlSchemaFree)(schema);
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
