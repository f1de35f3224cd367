//! The compiled table as named objects (sets, maps, chains), rendered two ways: the script that
//! replaces the whole table, and the transaction that turns one compiled table into another in
//! place, touching only what differs so the counters of everything else keep counting.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use crate::model::Name;

/// What kind of nft object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// A set of addresses, interfaces, ports…
    Set,
    /// A verdict map.
    Map,
    /// A chain of rules.
    Chain,
}

impl Kind {
    fn keyword(self) -> &'static str {
        match self {
            Kind::Set => "set",
            Kind::Map => "map",
            Kind::Chain => "chain",
        }
    }
}

/// One element of a set or map: the key alone (what `delete element` takes) and the element as
/// written (with comment and verdict).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Element {
    pub key: String,
    pub text: String,
}

/// A set, map or chain of our table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Object {
    pub kind: Kind,
    pub name: String,
    /// Declaration lines: `type …`, flags, `counter`, a comment; a base chain's hook line.
    pub head: Vec<String>,
    /// A set's or map's elements.
    pub elements: Vec<Element>,
    /// A chain's rules, in order.
    pub rules: Vec<String>,
}

impl Object {
    /// A set or map.
    pub fn collection(kind: Kind, name: &str, head: Vec<String>, elements: Vec<Element>) -> Self {
        Object {
            kind,
            name: name.to_string(),
            head,
            elements,
            rules: Vec::new(),
        }
    }

    /// A chain; `header` makes it a base chain.
    pub fn chain(name: &str, header: Option<&str>, rules: Vec<String>) -> Self {
        Object {
            kind: Kind::Chain,
            name: name.to_string(),
            head: header.map(str::to_string).into_iter().collect(),
            elements: Vec::new(),
            rules,
        }
    }

    /// Element counters live in the kernel's elements: replacing them loses the counts.
    fn counts_elements(&self) -> bool {
        self.kind != Kind::Chain && self.head.iter().any(|l| l == "counter")
    }

    fn render(&self, out: &mut String, elements: &[&Element], rules: &[String]) {
        let _ = writeln!(out, "\t{} {} {{", self.kind.keyword(), self.name);
        for line in &self.head {
            let _ = writeln!(out, "\t\t{line}");
        }
        if !elements.is_empty() {
            let texts: Vec<&str> = elements.iter().map(|e| e.text.as_str()).collect();
            let _ = writeln!(out, "\t\telements = {{ {} }}", texts.join(",\n\t\t\t"));
        }
        for rule in rules {
            let _ = writeln!(out, "\t\t{rule}");
        }
        out.push_str("\t}\n");
    }

    fn render_whole(&self, out: &mut String) {
        let elements: Vec<&Element> = self.elements.iter().collect();
        self.render(out, &elements, &self.rules);
    }

    /// The names of sets and maps the rules refer to (`@name`).
    fn references(&self) -> BTreeSet<&str> {
        self.rules
            .iter()
            .flat_map(|r| r.split_whitespace())
            .filter_map(|word| word.strip_prefix('@'))
            .collect()
    }
}

/// The set holding the running ruleset's digest: an in-place update starts by removing it.
const GENERATION: &str = "generation";

/// FNV-1a, 32 bits: tells rulesets apart (an nft `mark` holds 32 bits).
fn digest(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// A compiled table: the `nft -f` script that replaces our table atomically, and the objects
/// it is made of (for updating a running table in place, see [`Ruleset::update_script`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ruleset {
    table: Name,
    objects: Vec<Object>,
    /// Digest of the objects as written; the table carries it in its `generation` set.
    digest: u32,
    script: String,
}

impl Ruleset {
    /// A table made of `objects`, declared in this order (a reference comes after its target).
    pub(crate) fn new(table: Name, mut objects: Vec<Object>) -> Ruleset {
        let mut body = String::new();
        for o in &objects {
            o.render_whole(&mut body);
        }
        let digest = digest(&body);
        let generation = Object::collection(
            Kind::Set,
            GENERATION,
            vec![
                "type mark".to_string(),
                "comment \"digest of this ruleset, for updates in place\"".to_string(),
            ],
            vec![Element {
                key: format!("{digest:#010x}"),
                text: format!("{digest:#010x}"),
            }],
        );
        // Creating the table first makes the delete valid when it does not exist yet; all three
        // commands are one transaction, so no packet ever sees the table missing or half-built.
        let mut script =
            format!("table inet {table}\ndelete table inet {table}\ntable inet {table} {{\n");
        generation.render_whole(&mut script);
        script.push_str(&body);
        script.push_str("}\n");
        objects.insert(0, generation);
        Ruleset {
            table,
            objects,
            digest,
            script,
        }
    }

    /// The table this script replaces.
    pub fn table(&self) -> &Name {
        &self.table
    }

    /// The script: create-if-missing, delete, and the new table, applied as one transaction.
    pub fn script(&self) -> &str {
        &self.script
    }

    /// One transaction that turns the running table `from` (as compiled and applied before)
    /// into this one without rebuilding it: objects that did not change are not touched, so
    /// their counters keep counting; in a verdict map only the elements that changed are
    /// replaced, so a changed rule of 10 000 costs one element. A chain whose rules changed
    /// is refilled (its rule counters restart). `None` when `from` is another table. The
    /// script fails (and changes nothing) if the running table is not `from` any more —
    /// deleted behind our back, or replaced by another ruleset (the table's `generation` set
    /// holds a digest of the ruleset in force): apply [`Ruleset::script`] then.
    pub fn update_script(&self, from: &Ruleset) -> Option<String> {
        if from.table != self.table || from.objects.is_empty() {
            return None;
        }
        let t = &self.table;
        let old: BTreeMap<(Kind, &str), &Object> = from
            .objects
            .iter()
            .map(|o| ((o.kind, o.name.as_str()), o))
            .collect();
        let new: BTreeMap<(Kind, &str), &Object> = self
            .objects
            .iter()
            .map(|o| ((o.kind, o.name.as_str()), o))
            .collect();
        // Sets and maps declared differently (or gone) are deleted; chains referring to one
        // must let go of it first, so they are refilled too.
        let redeclared: BTreeSet<&str> = from
            .objects
            .iter()
            .filter(|o| o.kind != Kind::Chain)
            .filter(|o| {
                new.get(&(o.kind, o.name.as_str()))
                    .is_none_or(|n| n.head != o.head)
            })
            .map(|o| o.name.as_str())
            .collect();
        let mut script = String::new();
        // Fails unless the running table is `from`: not when it is gone (the additions below
        // would half-create it) nor when another ruleset replaced it (the changes from `from`
        // would leave parts of that one in place).
        let _ = writeln!(
            script,
            "delete element inet {t} {GENERATION} {{ {:#010x} }}",
            from.digest
        );
        let mut refilled: BTreeSet<(Kind, &str)> = BTreeSet::new();
        refilled.insert((Kind::Set, GENERATION));
        let mut additions: BTreeMap<(Kind, &str), Vec<&Element>> = BTreeMap::new();
        for o in &from.objects {
            let key = (o.kind, o.name.as_str());
            let kw = o.kind.keyword();
            let name = &o.name;
            let next = new.get(&key).filter(|n| n.head == o.head);
            match (o.kind, next) {
                (Kind::Chain, Some(n)) => {
                    let stale =
                        n.rules != o.rules || o.references().iter().any(|r| redeclared.contains(r));
                    if stale {
                        let _ = writeln!(script, "flush chain inet {t} {name}");
                        refilled.insert(key);
                    }
                }
                (Kind::Chain, None) => {
                    let _ = writeln!(script, "flush chain inet {t} {name}");
                }
                (_, Some(n)) if o.counts_elements() => {
                    let before: BTreeSet<&Element> = o.elements.iter().collect();
                    let after: BTreeSet<&Element> = n.elements.iter().collect();
                    let gone: Vec<&str> =
                        before.difference(&after).map(|e| e.key.as_str()).collect();
                    if !gone.is_empty() {
                        let _ = writeln!(
                            script,
                            "delete element inet {t} {name} {{ {} }}",
                            gone.join(", ")
                        );
                    }
                    let added: Vec<&Element> = after.difference(&before).copied().collect();
                    if !added.is_empty() {
                        additions.insert(key, added);
                    }
                }
                (_, Some(n)) => {
                    if n.elements != o.elements && !refilled.contains(&key) {
                        let _ = writeln!(script, "flush {kw} inet {t} {name}");
                        refilled.insert(key);
                    }
                }
                // Gone or redeclared: emptied now (a dispatch map lets go of its chains),
                // deleted once no chain refers to it.
                (_, None) => {
                    let _ = writeln!(script, "flush {kw} inet {t} {name}");
                }
            }
        }
        for o in &from.objects {
            let key = (o.kind, o.name.as_str());
            if o.kind != Kind::Chain && redeclared.contains(o.name.as_str()) {
                let _ = writeln!(script, "delete {} inet {t} {}", o.kind.keyword(), o.name);
            }
            let chain_gone = new.get(&key).is_none_or(|n| n.head != o.head);
            if o.kind == Kind::Chain && chain_gone {
                let _ = writeln!(script, "delete chain inet {t} {}", o.name);
            }
        }
        // Everything new, refilled or grown, in the full script's order.
        let mut block = String::new();
        for n in &self.objects {
            let key = (n.kind, n.name.as_str());
            let fresh = old.get(&key).is_none_or(|o| o.head != n.head);
            if fresh || refilled.contains(&key) {
                n.render_whole(&mut block);
            } else if let Some(added) = additions.get(&key) {
                n.render(&mut block, added, &[]);
            }
        }
        let _ = write!(script, "table inet {t} {{\n{block}}}\n");
        Some(script)
    }
}

#[cfg(test)]
impl Ruleset {
    /// A script written by hand, to see how `nft` treats one it refuses.
    pub(crate) fn from_script(table: Name, script: String) -> Ruleset {
        Ruleset {
            table,
            objects: Vec::new(),
            digest: 0,
            script,
        }
    }
}

impl fmt::Display for Ruleset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.script)
    }
}
