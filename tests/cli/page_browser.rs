//! The report page's layout in a real headless Chromium at 1400 px: a probe script added to a
//! test copy of the page measures what a person would see (no table wider than the window, ids
//! and IBANs on one line, cut with an ellipsis but whole in the page), and a screenshot is a
//! real picture. The same probe on the page of the previous release, whose tables overflowed,
//! must say so: the check can fail. Skipped with a notice where Chromium is missing, except
//! under `CI=true`, where that fails.

use std::fs;
use std::path::Path;

use crate::browser::{chromium_or_skip, headless};
use crate::env::{Env, assert_ok, demo};

/// Measures the laid-out page and writes the figures into the DOM as `<pre id="probe">`.
const PROBE: &str = r#"<script>
(function () {
  var d = document.documentElement, over = [], ids = 0, cut = 0, wrapped = 0;
  Array.prototype.forEach.call(document.querySelectorAll("table"), function (t, i) {
    var right = t.getBoundingClientRect().right;
    if (right > d.clientWidth + 0.5) over.push((t.id || "table " + i) + " ends at " + Math.round(right));
  });
  Array.prototype.forEach.call(document.querySelectorAll("td.id, div.id"), function (c) {
    if (!c.textContent) return;
    ids++;
    if (c.scrollWidth > c.clientWidth) cut++;
    var range = document.createRange();
    range.selectNodeContents(c);
    var line = parseFloat(getComputedStyle(c).lineHeight) || 18;
    if (range.getBoundingClientRect().height > 1.5 * line) wrapped++;
  });
  var probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = "width=" + window.innerWidth + " scroll=" + d.scrollWidth + " ids=" + ids +
    " cut=" + cut + " wrapped=" + wrapped + " over=" + over.join("; ");
  document.body.appendChild(probe);
})();
</script>"#;

/// What the probe measured.
#[derive(Debug)]
struct Layout {
    width: u32,
    scroll: u32,
    ids: u32,
    cut: u32,
    wrapped: u32,
    over: String,
}

impl Layout {
    fn fits(&self) -> bool {
        self.scroll <= self.width && self.over.is_empty()
    }
}

/// Opens a copy of `page` with the probe at 1400 px and reads what it measured.
fn measure(env: &Env, browser: &Path, page: &Path, name: &str) -> Layout {
    let html = fs::read_to_string(page).unwrap();
    assert!(html.contains("</body>"));
    let copy = env.write(name, html.replace("</body>", &format!("{PROBE}</body>")));
    let out = headless(
        browser,
        &env.path("profile"),
        &[
            "--window-size=1400,1000",
            "--dump-dom",
            &format!("file://{}", copy.display()),
        ],
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    let start = dom
        .find("<pre id=\"probe\">")
        .unwrap_or_else(|| panic!("the probe ran: {}", String::from_utf8_lossy(&out.stderr)));
    let text = &dom[start + "<pre id=\"probe\">".len()..];
    let text = &text[..text.find("</pre>").unwrap()];
    let field = |key: &str| -> String {
        let from = text.find(&format!("{key}=")).unwrap() + key.len() + 1;
        let rest = &text[from..];
        let end = if key == "over" {
            rest.len()
        } else {
            rest.find(' ').unwrap_or(rest.len())
        };
        rest[..end].to_string()
    };
    let number = |key: &str| field(key).parse::<u32>().unwrap();
    Layout {
        width: number("width"),
        scroll: number("scroll"),
        ids: number("ids"),
        cut: number("cut"),
        wrapped: number("wrapped"),
        over: field("over"),
    }
}

/// How much of a screenshot is not the page's white, and its width.
fn ink(png_path: &Path) -> (u32, f64) {
    let decoder = png::Decoder::new(std::io::BufReader::new(fs::File::open(png_path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let total = pixels.len() / channels;
    let inked = pixels
        .chunks(channels)
        .filter(|p| p[..3].iter().any(|&v| v < 235))
        .count();
    (info.width, inked as f64 / total as f64)
}

#[test]
fn the_page_fits_1400_px_keeps_ids_on_one_line_and_shows_times_in_the_zone() {
    let Some(browser) = chromium_or_skip("page_browser") else {
        return;
    };
    let env = Env::new().with_demo_topups();
    let out = env.run(
        "r",
        &[
            "--timezone",
            "Europe/Berlin",
            &demo("2026-11-20.camt053.xml"),
            &demo("2026-11-21.camt053.xml"),
        ],
    );
    assert_ok(&out);
    let page = env.path("r/report.html");
    let html = fs::read_to_string(&page).unwrap();
    // Times in the zone, with UTC beside them; amounts with thousands separators.
    assert!(html.contains("Times in Europe&#x2f;Berlin, with UTC in brackets."));
    assert!(
        regex::Regex::new(
            r"started 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d CET \(20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ\)"
        )
        .unwrap()
        .is_match(&html),
        "started in CET and UTC"
    );
    assert!(html.contains("<td>DEBIT</td><td>Out</td><td>EUR</td><td class=\"num\">1</td><td class=\"num\">1,250.00</td>"));
    // An id is whole in the page (hover and copy give all of it), however the cell cuts it.
    assert!(html.contains(
        r#"<td class="id" title="top-up none · reference 92276658-1e27-41c0-8a6a-63ec24eed6a4">92276658-1e27-41c0-8a6a-63ec24eed6a4</td>"#
    ));

    let layout = measure(&env, &browser, &page, "probe.html");
    assert_eq!(layout.width, 1400, "{layout:?}");
    assert!(layout.fits(), "no horizontal scroll at 1400 px: {layout:?}");
    assert!(layout.ids > 20, "{layout:?}");
    assert!(
        layout.cut > 0,
        "long ids are cut with an ellipsis: {layout:?}"
    );
    assert_eq!(layout.wrapped, 0, "no id wraps into fragments: {layout:?}");

    // The probe fails a page whose tables overflow: the previous release's page of a night.
    let release = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/releases/2026-12-06-schema-8/reports/1/report.html");
    let old = measure(&env, &browser, &release, "old.html");
    assert!(!old.fits(), "the previous page overflowed: {old:?}");

    let shot = env.path("page.png");
    let out = headless(
        &browser,
        &env.path("profile"),
        &[
            "--window-size=1400,1000",
            &format!("--screenshot={}", shot.display()),
            &format!("file://{}", page.display()),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (width, inked) = ink(&shot);
    assert_eq!(width, 1400);
    assert!(
        inked > 0.03,
        "the screenshot shows the page: {inked:.3} inked"
    );
}
