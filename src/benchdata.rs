//! A generated night for benchmarks and crash tests: top-ups, a camt.053.001.02 statement and
//! the same night as canonical CSV, with the mangled references real payers type and a realistic
//! mix of exceptions, plus the outcome counts recon must find. Deterministic for a seed.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

/// What to generate.
pub struct Spec {
    pub topups: usize,
    pub transactions: usize,
    pub seed: u64,
    /// When the top-ups were created (default: 2026-11-01T08:00:00Z, before the statement).
    pub created_at: Option<DateTime<Utc>>,
    /// The day the statement books on (default: 2026-11-21).
    pub booked_on: Option<NaiveDate>,
    pub mix: Mix,
}

/// Which outcomes a generated night has.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// Matches and every kind of exception, as nights have them.
    Realistic,
    /// Every transaction the same payment of the first top-up by the same payer: the first
    /// settles it, every other one is `ALREADY_SETTLED`.
    Copies,
    /// Every transaction a reference no top-up has (`UNKNOWN_REFERENCE`), each needing a
    /// suggestion.
    Unknown,
}

/// One generated bank transaction.
struct Payment {
    amount_cents: u64,
    debit: bool,
    pending: bool,
    reversal: bool,
    remittance: Vec<String>,
    payer: usize,
}

/// Writes `topups.csv`, `statement.xml`, `statement.csv` and `expected.json` into `dir`;
/// returns the expected count per outcome.
pub fn generate(spec: &Spec, dir: &Path) -> io::Result<BTreeMap<&'static str, usize>> {
    fs::create_dir_all(dir)?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let topups: Vec<(Uuid, u64)> = (0..spec.topups)
        .map(|_| {
            (
                random_uuid(&mut rng),
                rng.random_range(5..=500) * 100 + [0, 50, 99][rng.random_range(0..3)],
            )
        })
        .collect();
    write_topups(&dir.join("topups.csv"), &topups, spec.created_at)?;
    let mut night = Night {
        rng,
        topups: &topups,
        next_topup: 0,
        settled: Vec::new(),
    };
    let mut expected: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut payments = Vec::with_capacity(spec.transactions);
    for i in 0..spec.transactions {
        let (payment, outcome) = match spec.mix {
            Mix::Realistic => night.payment(i),
            Mix::Copies => night.copy(i),
            Mix::Unknown => night.unknown(),
        };
        *expected.entry(outcome).or_default() += 1;
        payments.push(payment);
    }
    let day = spec
        .booked_on
        .map_or_else(|| "2026-11-21".to_string(), |d| d.to_string());
    write_camt(&dir.join("statement.xml"), &payments, &day)?;
    write_csv(&dir.join("statement.csv"), &payments, &day)?;
    let json = serde_json::to_string_pretty(&expected).map_err(io::Error::other)?;
    fs::write(dir.join("expected.json"), json + "\n")?;
    Ok(expected)
}

fn random_uuid(rng: &mut ChaCha8Rng) -> Uuid {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// The top-ups as `topups import` reads them, all confirmed, of one account group.
fn write_topups(
    path: &Path,
    topups: &[(Uuid, u64)],
    created_at: Option<DateTime<Utc>>,
) -> io::Result<()> {
    let group = Uuid::from_u128(0x1ea6_0f56_b67b_61fc_829a_0242_ac13_0003);
    let created_at = match created_at {
        Some(at) => crate::topup::format_timestamp(at),
        None => "2026-11-01T08:00:00Z".to_string(),
    };
    let mut csv = BufWriter::new(File::create(path)?);
    writeln!(
        csv,
        "id,created_at,account_group_id,cash_amount,currency,status,settlement_reference"
    )?;
    for (id, cents) in topups {
        writeln!(
            csv,
            "{id},{created_at},{group},{},EUR,CONFIRMED,{id}",
            money(*cents)
        )?;
    }
    csv.flush()
}

/// The night being generated: the random source and which top-ups were paid so far.
struct Night<'t> {
    rng: ChaCha8Rng,
    topups: &'t [(Uuid, u64)],
    /// The next top-up a payment pays (each is paid in order, at most once correctly).
    next_topup: usize,
    /// The top-ups paid with the right amount, which a later payment may pay again.
    settled: Vec<usize>,
}

impl Night<'_> {
    /// The `i`-th payment of the night and the outcome recon must find for it.
    fn payment(&mut self, i: usize) -> (Payment, &'static str) {
        let rng = &mut self.rng;
        let roll = rng.random_range(0..1000);
        let payer = rng.random_range(0..10_000);
        let mut payment = Payment {
            amount_cents: rng.random_range(100..100_000),
            debit: false,
            pending: false,
            reversal: false,
            remittance: Vec::new(),
            payer,
        };
        let invoice =
            |rng: &mut ChaCha8Rng| format!("Invoice {} thank you", rng.random_range(1000..99_999));
        let outcome = match roll {
            0..=39 => {
                payment.debit = true;
                payment.remittance.push(format!("Payout {i}"));
                "DEBIT"
            }
            40..=59 => {
                payment.pending = true;
                payment
                    .remittance
                    .push(format!("topup {}", random_uuid(rng)));
                "NOT_BOOKED"
            }
            60..=69 => {
                payment.debit = true;
                payment.reversal = true;
                payment.remittance.push(format!("RETURN {i}"));
                "REVERSAL"
            }
            70..=99 => {
                let reference = mangle(&random_uuid(rng), rng);
                payment.remittance.push(format!("topup {reference}"));
                "UNKNOWN_REFERENCE"
            }
            100..=129 => {
                payment.remittance.push(invoice(rng));
                "NO_REFERENCE"
            }
            130..=149 if !self.settled.is_empty() => {
                let k = self.settled[rng.random_range(0..self.settled.len())];
                payment.amount_cents = self.topups[k].1;
                payment.remittance = reference_text(&self.topups[k].0, rng);
                "ALREADY_SETTLED"
            }
            _ if self.next_topup < self.topups.len() => {
                let k = self.next_topup;
                self.next_topup += 1;
                payment.remittance = reference_text(&self.topups[k].0, rng);
                if roll < 190 {
                    payment.amount_cents = self.topups[k].1 + rng.random_range(1..2_000);
                    "AMOUNT_MISMATCH"
                } else {
                    payment.amount_cents = self.topups[k].1;
                    self.settled.push(k);
                    "MATCHED"
                }
            }
            _ => {
                payment.remittance.push(invoice(rng));
                "NO_REFERENCE"
            }
        };
        (payment, outcome)
    }
}

impl Night<'_> {
    /// The same payment of the first top-up, again: the first settles it.
    fn copy(&mut self, i: usize) -> (Payment, &'static str) {
        let Some(&(id, cents)) = self.topups.first() else {
            return self.unknown();
        };
        let payment = Payment {
            amount_cents: cents,
            debit: false,
            pending: false,
            reversal: false,
            remittance: vec![format!("topup {id}")],
            payer: 1,
        };
        (payment, if i == 0 { "MATCHED" } else { "ALREADY_SETTLED" })
    }

    /// A payment of a reference no top-up has, from any payer.
    fn unknown(&mut self) -> (Payment, &'static str) {
        let rng = &mut self.rng;
        let reference = random_uuid(rng);
        let payment = Payment {
            amount_cents: rng.random_range(100..100_000),
            debit: false,
            pending: false,
            reversal: false,
            remittance: vec![format!("topup {reference}")],
            payer: rng.random_range(0..10_000),
        };
        (payment, "UNKNOWN_REFERENCE")
    }
}

fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// A reference the way payers and banks mangle it (SPEC "Finding the reference").
fn mangle(id: &Uuid, rng: &mut ChaCha8Rng) -> String {
    let plain = id.hyphenated().to_string();
    match rng.random_range(0..4) {
        0 => plain,
        1 => plain.to_uppercase(),
        2 => id.simple().to_string().to_uppercase(),
        _ => {
            let s = id.simple().to_string();
            format!("{} {}", &s[..13], &s[13..])
        }
    }
}

/// Remittance lines naming a top-up, in the shapes the SPEC lists, some split over two lines.
fn reference_text(id: &Uuid, rng: &mut ChaCha8Rng) -> Vec<String> {
    let reference = mangle(id, rng);
    let text = match rng.random_range(0..5) {
        0 => format!("topup {reference}"),
        1 => format!("TOPUP {reference}"),
        2 => format!("Top-Up: {reference} thanks"),
        3 => format!("EREF+NOTPROVIDEDSVWZ+TOPUP {reference}"),
        _ => reference,
    };
    if text.len() > 35 && rng.random_bool(0.5) {
        // Banks cut unstructured text into 35-character lines, wherever that falls.
        vec![text[..35].to_string(), text[35..].to_string()]
    } else {
        vec![text]
    }
}

fn xml_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn write_camt(path: &Path, payments: &[Payment], day: &str) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let (mut credits, mut debits) = (0u64, 0u64);
    for p in payments.iter().filter(|p| !p.pending) {
        if p.debit {
            debits += p.amount_cents;
        } else {
            credits += p.amount_cents;
        }
    }
    let opening = 100_000_000_u64;
    let closing = opening + credits - debits;
    write!(
        out,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>BENCH</MsgId><CreDtTm>{day}T22:00:00</CreDtTm></GrpHdr>
    <Stmt>
      <Id>BENCH-{day}</Id>
      <ElctrncSeqNb>1</ElctrncSeqNb>
      <Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>
      <Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{day}</Dt></Dt></Bal>
      <Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{day}</Dt></Dt></Bal>
"#,
        money(opening),
        money(closing)
    )?;
    for (i, p) in payments.iter().enumerate() {
        let (cd, party, account) = if p.debit {
            ("DBIT", "Cdtr", "CdtrAcct")
        } else {
            ("CRDT", "Dbtr", "DbtrAcct")
        };
        write!(
            out,
            r#"      <Ntry>
        <NtryRef>N{i:08}</NtryRef>
        <Amt Ccy="EUR">{}</Amt>
        <CdtDbtInd>{cd}</CdtDbtInd>
{}        <Sts>{}</Sts>
        <BookgDt><Dt>{day}</Dt></BookgDt>
        <ValDt><Dt>{day}</Dt></ValDt>
        <AcctSvcrRef>BANK{i:010}</AcctSvcrRef>
        <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>
        <NtryDtls>
          <TxDtls>
            <Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>
            <RltdPties>
              <{party}><Nm>Customer {}</Nm></{party}>
              <{account}><Id><IBAN>DE{:020}</IBAN></Id></{account}>
            </RltdPties>
            <RmtInf>
"#,
            money(p.amount_cents),
            if p.reversal {
                "        <RvslInd>true</RvslInd>\n"
            } else {
                ""
            },
            if p.pending { "PDNG" } else { "BOOK" },
            p.payer,
            p.payer
        )?;
        for line in &p.remittance {
            writeln!(out, "              <Ustrd>{}</Ustrd>", xml_text(line))?;
        }
        out.write_all(
            b"            </RmtInf>\n          </TxDtls>\n        </NtryDtls>\n      </Ntry>\n",
        )?;
    }
    out.write_all(b"    </Stmt>\n  </BkToCstmrStmt>\n</Document>\n")?;
    out.flush()
}

fn write_csv(path: &Path, payments: &[Payment], day: &str) -> io::Result<()> {
    let mut out = csv::Writer::from_writer(BufWriter::new(File::create(path)?));
    out.write_record([
        "booking_date",
        "value_date",
        "amount",
        "currency",
        "remittance",
        "counterparty_name",
        "counterparty_iban",
        "bank_ref",
        "status",
    ])?;
    for (i, p) in payments.iter().enumerate() {
        let sign = if p.debit { "-" } else { "" };
        // CSV has no reversal flag: a reversal here is an ordinary debit.
        out.write_record([
            day.to_string(),
            day.to_string(),
            format!("{sign}{}", money(p.amount_cents)),
            "EUR".to_string(),
            p.remittance.join(" "),
            format!("Customer {}", p.payer),
            format!("DE{:020}", p.payer),
            format!("BANK{i:010}"),
            if p.pending { "PDNG" } else { "BOOK" }.to_string(),
        ])?;
    }
    out.flush()
}
