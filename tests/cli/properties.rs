//! Properties that must hold for any input, not just the examples: amounts round-trip, every
//! mangling of a reference that the SPEC allows is recovered, outcomes depend only on the
//! documented order, and conservation holds.

use std::collections::HashMap;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use recon::matching::{Category, Known, KnownTopUp, Matcher, Outcome};
use recon::money::{Currency, format_amount, parse_amount};
use recon::reference::{Strength, find_candidates};
use recon::statement::{
    BankRefs, Counterparty, Direction, Position, Remittance, Transaction, TxIdentity, identity,
};
use recon::topup::{Status, TopUp};
use rust_decimal::Decimal;
use uuid::Uuid;

proptest! {
    // Past failures are kept in `properties.proptest-regressions` beside this file (proptest's
    // default would look for a `proptest-regressions/` folder beside `tests/cli/`, the folder
    // with the program's main.rs).
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn amounts_round_trip(units in 0u64..1_000_000_000_000, scale in 0u32..=5) {
        let value = Decimal::new(units as i64, scale);
        let text = value.to_string();
        prop_assert_eq!(parse_amount(&text, 5).unwrap(), value);
        let eur: Currency = "EUR".parse().unwrap();
        let shown = format_amount(value, eur);
        prop_assert_eq!(parse_amount(&shown, 5).unwrap(), value);
        prop_assert!(shown.split('.').nth(1).is_some_and(|d| d.len() >= 2));
    }

    #[test]
    fn any_allowed_mangling_of_a_reference_is_recovered(
        bits in any::<u128>(),
        upper in any::<bool>(),
        hyphens in any::<bool>(),
        split in 0usize..36,
        line_break in any::<bool>(),
        keyword in 0usize..5,
        before in prop::sample::select(vec!["", "payment ", "Order 4711 ", "Danke! "]),
        after in prop::sample::select(vec!["", " thanks", " /ROC/x", "\nregards"]),
    ) {
        let id = Uuid::from_u128(bits);
        let mut text = if hyphens { id.hyphenated().to_string() } else { id.simple().to_string() };
        if upper {
            text = text.to_uppercase();
        }
        let split = split.min(text.len());
        let joiner = if line_break { "\n" } else { " " };
        let reference = format!("{}{joiner}{}", &text[..split], &text[split..]);
        let prefix = ["", "topup ", "TOPUP ", "Top-Up: ", "SVWZ+TOPUP "][keyword];
        let remittance = format!("{before}{prefix}{reference}{after}");
        let found = find_candidates([remittance.as_str()]);
        let expected = id.hyphenated().to_string();
        let hit = found.iter().find(|c| c.reference.to_string() == expected);
        prop_assert!(hit.is_some(), "{:?} not found in {:?}", expected, remittance);
        if keyword > 0 {
            prop_assert_eq!(found[0].reference.to_string(), expected, "after the keyword it ranks first");
            prop_assert!(found[0].strength > Strength::Weak);
        }
    }

    #[test]
    fn outcomes_depend_only_on_the_documented_order(
        payments in prop::collection::vec((0usize..6, 0u8..4, any::<bool>()), 1..40),
        files in 1usize..5,
        completion in any::<u64>(),
    ) {
        let refs: Vec<Uuid> = (0..6u128).map(|i| Uuid::from_u128(0x1000 + i * 7919)).collect();
        let known = known_topups(&refs);
        // Split the payments into files, in order.
        let mut split: Vec<Vec<Transaction>> = vec![Vec::new(); files];
        for (i, (r, amount, debit)) in payments.iter().enumerate() {
            split[i % files].push(payment(&refs[*r], *amount, *debit, i));
        }
        for file in &mut split {
            identity::assign(file);
        }
        let sequential = decide(&split, &known);
        // Files finish reading in any order (threads); deciding follows file order.
        let mut order: Vec<usize> = (0..files).collect();
        let mut seed = completion;
        for i in (1..order.len()).rev() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        let mut arrived: Vec<(usize, Vec<Transaction>)> = order.iter().map(|&i| (i, split[i].clone())).collect();
        arrived.sort_by_key(|(i, _)| *i);
        let reordered: Vec<Vec<Transaction>> = arrived.into_iter().map(|(_, f)| f).collect();
        prop_assert_eq!(decide(&reordered, &known), sequential.clone());
        // Conservation: one outcome per transaction, and the categories add up.
        prop_assert_eq!(sequential.len(), payments.len());
        let by: HashMap<Category, usize> = sequential.iter().fold(HashMap::new(), |mut m, (o, _)| {
            *m.entry(o.category()).or_default() += 1;
            m
        });
        prop_assert_eq!(by.values().sum::<usize>(), payments.len());
        // No top-up is matched twice.
        let mut matched = HashMap::new();
        for (o, reference) in &sequential {
            if *o == Outcome::Matched {
                *matched.entry(reference.clone()).or_insert(0) += 1;
            }
        }
        prop_assert!(matched.values().all(|&n| n == 1));
    }
}

fn known_topups(refs: &[Uuid]) -> Known {
    let mut known = Known::default();
    for (i, r) in refs.iter().enumerate() {
        let status = match i {
            4 => Status::Settled,
            5 => Status::Cancelled,
            _ => Status::Confirmed,
        };
        let topup = TopUp {
            id: r.to_string().parse().unwrap(),
            created_at: "2026-11-01T00:00:00Z".parse().unwrap(),
            account_group_id: r.to_string().parse().unwrap(),
            cash_amount: Decimal::new(1000, 2),
            currency: "EUR".parse().unwrap(),
            status,
            settlement_reference: r.to_string().parse().unwrap(),
        };
        known.topups.insert(
            topup.settlement_reference,
            KnownTopUp {
                topup,
                settled_by: None,
            },
        );
    }
    known
}

fn payment(reference: &Uuid, amount: u8, debit: bool, i: usize) -> Transaction {
    Transaction {
        position: Position {
            entry: i as u32 + 1,
            detail: None,
            line: None,
        },
        statement_id: None,
        account: Some("DE89370400440532013000".into()),
        direction: if debit {
            Direction::Debit
        } else {
            Direction::Credit
        },
        booked: true,
        status_code: "BOOK".into(),
        reversal: false,
        amount: Decimal::new(1000 + i64::from(amount) * 100 * i64::from(amount % 2), 2),
        currency: "EUR".parse().unwrap(),
        booking_date: None,
        value_date: None,
        refs: BankRefs {
            entry_servicer_ref: Some(format!("R{i}")),
            ..BankRefs::default()
        },
        counterparty: Counterparty::default(),
        remittance: Remittance {
            unstructured: vec![format!("topup {reference}")],
            ..Remittance::default()
        },
        identity: TxIdentity::default(),
        cross_key: None,
    }
}

fn decide(files: &[Vec<Transaction>], known: &Known) -> Vec<(Outcome, Option<String>)> {
    let mut matcher = Matcher::new();
    files
        .iter()
        .flatten()
        .map(|tx| {
            let candidates =
                find_candidates(tx.remittance.search_fields().iter().map(AsRef::as_ref));
            let decision = matcher.decide(tx, &candidates, known);
            (decision.outcome, decision.reference.map(|r| r.to_string()))
        })
        .collect()
}
