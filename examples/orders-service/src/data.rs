//! The service's own data: people, the team each belongs to, who manages
//! which team, and orders. In memory, loaded from a JSON file (or the
//! built-in demo set) and changeable at run time; a real service would read
//! its database here. Nothing of this is in any token: the policies see it
//! because the service puts it into the entities of each request.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{PoisonError, RwLock};

/// Longest order description accepted, characters.
pub const MAX_ITEM_CHARS: usize = 200;

/// The data file: `{"teams": [...], "people": [...], "orders": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Data {
    /// Teams and their managers.
    #[serde(default)]
    pub teams: Vec<Team>,
    /// People, each in one team.
    #[serde(default)]
    pub people: Vec<Person>,
    /// Orders, each owned by a person.
    #[serde(default)]
    pub orders: Vec<Order>,
}

/// A team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    /// Its id (`emea`).
    pub id: String,
    /// The subjects (token `sub`) of the people who manage it. A manager
    /// need not be a member.
    #[serde(default)]
    pub managers: BTreeSet<String>,
}

/// A person, known by the `sub` of their tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// The token subject. For a client-credentials token that is the
    /// client id; for a person signed in at the authority, their user id.
    pub sub: String,
    /// A display name.
    #[serde(default)]
    pub name: String,
    /// The team they belong to.
    pub team: String,
}

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    /// Its id (`o-1`).
    pub id: String,
    /// The owner's `sub`.
    pub owner: String,
    /// What was ordered.
    pub item: String,
    /// Only the owner may read it, whatever else the policies permit.
    #[serde(default)]
    pub confidential: bool,
}

/// An order with its team: the owner's team now. This is what the
/// service answers with and what the `Order` entity is built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    /// Its id.
    pub id: String,
    /// The owner's `sub`.
    pub owner: String,
    /// The owner's team.
    pub team: String,
    /// What was ordered.
    pub item: String,
    /// Owner's eyes only.
    pub confidential: bool,
}

/// What the data says about one subject: the principal's parents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relations {
    /// The team they belong to; `None` for a subject the service does not
    /// know (another service's client, say).
    pub team: Option<String>,
    /// The teams they manage.
    pub manages: Vec<String>,
}

/// Data that does not hang together.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DataError {
    /// The file could not be read.
    #[error("cannot read `{path}`: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The file is not the expected JSON.
    #[error("data file: {0}")]
    Parse(String),
    /// Two records with one id.
    #[error("{kind} `{id}` is listed twice")]
    Duplicate {
        /// `team`, `person` or `order`.
        kind: &'static str,
        /// The id.
        id: String,
    },
    /// A reference to a team that is not listed.
    #[error("unknown team `{0}`")]
    UnknownTeam(String),
    /// A reference to a person that is not listed.
    #[error("unknown person `{0}`")]
    UnknownPerson(String),
    /// An empty id, or an item that is empty or too long.
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Default)]
struct State {
    teams: BTreeMap<String, BTreeSet<String>>,
    people: BTreeMap<String, Person>,
    orders: BTreeMap<String, Order>,
    next_order: u64,
}

/// The data, shared by every request.
#[derive(Debug)]
pub struct Directory {
    state: RwLock<State>,
}

fn check_item(item: &str) -> Result<(), DataError> {
    let n = item.chars().count();
    if n == 0 || n > MAX_ITEM_CHARS {
        return Err(DataError::Invalid(format!(
            "`item` must be 1 to {MAX_ITEM_CHARS} characters"
        )));
    }
    Ok(())
}

impl Directory {
    /// Checks `data` hangs together: ids non-empty and unique, every
    /// person's team listed, every manager and order owner a listed person.
    ///
    /// # Errors
    /// The first inconsistency found.
    pub fn new(data: Data) -> Result<Self, DataError> {
        let mut state = State::default();
        for t in data.teams {
            if t.id.is_empty() {
                return Err(DataError::Invalid("a team has an empty `id`".into()));
            }
            if state.teams.insert(t.id.clone(), t.managers).is_some() {
                return Err(DataError::Duplicate { kind: "team", id: t.id });
            }
        }
        for p in data.people {
            if p.sub.is_empty() {
                return Err(DataError::Invalid("a person has an empty `sub`".into()));
            }
            if !state.teams.contains_key(&p.team) {
                return Err(DataError::UnknownTeam(p.team));
            }
            if let Some(p) = state.people.insert(p.sub.clone(), p) {
                return Err(DataError::Duplicate {
                    kind: "person",
                    id: p.sub,
                });
            }
        }
        if let Some(m) = state.teams.values().flatten().find(|m| !state.people.contains_key(*m)) {
            return Err(DataError::UnknownPerson(m.clone()));
        }
        for o in data.orders {
            if o.id.is_empty() {
                return Err(DataError::Invalid("an order has an empty `id`".into()));
            }
            if !state.people.contains_key(&o.owner) {
                return Err(DataError::UnknownPerson(o.owner));
            }
            check_item(&o.item)?;
            if let Some(o) = state.orders.insert(o.id.clone(), o) {
                return Err(DataError::Duplicate {
                    kind: "order",
                    id: o.id,
                });
            }
        }
        Ok(Self {
            state: RwLock::new(state),
        })
    }

    /// Parses and checks a data file's text.
    ///
    /// # Errors
    /// [`DataError::Parse`], or as [`Directory::new`].
    pub fn from_json(text: &str) -> Result<Self, DataError> {
        let data: Data = serde_json::from_str(text).map_err(|e| DataError::Parse(e.to_string()))?;
        Self::new(data)
    }

    /// Reads, parses and checks a data file.
    ///
    /// # Errors
    /// [`DataError::Read`], or as [`Directory::from_json`].
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_json(&text)
    }

    /// The built-in demo set: Alice and Bob in `emea`, Carol managing
    /// `emea`, Dave in `apac`; Alice owns `o-1` and the confidential `o-2`,
    /// Dave owns `o-3`.
    #[must_use]
    pub fn demo() -> Self {
        let person = |sub: &str, name: &str, team: &str| Person {
            sub: sub.into(),
            name: name.into(),
            team: team.into(),
        };
        let order = |id: &str, owner: &str, item: &str, confidential| Order {
            id: id.into(),
            owner: owner.into(),
            item: item.into(),
            confidential,
        };
        let state = State {
            teams: BTreeMap::from([
                ("emea".to_owned(), BTreeSet::from(["carol".to_owned()])),
                ("apac".to_owned(), BTreeSet::new()),
            ]),
            people: [
                person("alice", "Alice", "emea"),
                person("bob", "Bob", "emea"),
                person("carol", "Carol", "emea"),
                person("dave", "Dave", "apac"),
            ]
            .into_iter()
            .map(|p| (p.sub.clone(), p))
            .collect(),
            orders: [
                order("o-1", "alice", "12 boxes of printer paper", false),
                order("o-2", "alice", "a replacement laptop", true),
                order("o-3", "dave", "a standing desk", false),
            ]
            .into_iter()
            .map(|o| (o.id.clone(), o))
            .collect(),
            next_order: 0,
        };
        Self {
            state: RwLock::new(state),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The order `id` with its team (the owner's), if there is one.
    #[must_use]
    pub fn order(&self, id: &str) -> Option<OrderView> {
        let state = self.read();
        let o = state.orders.get(id)?;
        let team = state.people.get(&o.owner)?.team.clone();
        Some(OrderView {
            id: o.id.clone(),
            owner: o.owner.clone(),
            team,
            item: o.item.clone(),
            confidential: o.confidential,
        })
    }

    /// The team `sub` belongs to and the teams they manage.
    #[must_use]
    pub fn relations(&self, sub: &str) -> Relations {
        let state = self.read();
        Relations {
            team: state.people.get(sub).map(|p| p.team.clone()),
            manages: state
                .teams
                .iter()
                .filter(|(_, managers)| managers.contains(sub))
                .map(|(team, _)| team.clone())
                .collect(),
        }
    }

    /// The order `owner` would create: a fresh id (never handed out
    /// before), the owner's team. Not stored until [`Directory::insert`].
    ///
    /// # Errors
    /// [`DataError::UnknownPerson`] when `owner` is not a person here;
    /// [`DataError::Invalid`] for an empty or overlong `item`.
    pub fn draft(&self, owner: &str, item: &str, confidential: bool) -> Result<OrderView, DataError> {
        check_item(item)?;
        let mut state = self.write();
        let team = state
            .people
            .get(owner)
            .map(|p| p.team.clone())
            .ok_or_else(|| DataError::UnknownPerson(owner.to_owned()))?;
        let id = loop {
            state.next_order += 1;
            let id = format!("o-{}", state.next_order);
            if !state.orders.contains_key(&id) {
                break id;
            }
        };
        Ok(OrderView {
            id,
            owner: owner.to_owned(),
            team,
            item: item.to_owned(),
            confidential,
        })
    }

    /// Stores an order made by [`Directory::draft`].
    ///
    /// # Errors
    /// [`DataError::Duplicate`] if its id is taken.
    pub fn insert(&self, order: &OrderView) -> Result<(), DataError> {
        let mut state = self.write();
        if state.orders.contains_key(&order.id) {
            return Err(DataError::Duplicate {
                kind: "order",
                id: order.id.clone(),
            });
        }
        state.orders.insert(
            order.id.clone(),
            Order {
                id: order.id.clone(),
                owner: order.owner.clone(),
                item: order.item.clone(),
                confidential: order.confidential,
            },
        );
        Ok(())
    }

    /// Makes `sub` a manager of `team` (or no longer one). Takes effect on
    /// the next request: no token changes.
    ///
    /// # Errors
    /// [`DataError::UnknownTeam`], [`DataError::UnknownPerson`].
    pub fn set_manager(&self, team: &str, sub: &str, manager: bool) -> Result<(), DataError> {
        let mut state = self.write();
        if !state.people.contains_key(sub) {
            return Err(DataError::UnknownPerson(sub.to_owned()));
        }
        let managers = state
            .teams
            .get_mut(team)
            .ok_or_else(|| DataError::UnknownTeam(team.to_owned()))?;
        if manager {
            managers.insert(sub.to_owned());
        } else {
            managers.remove(sub);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_data_relations() {
        let d = Directory::demo();
        assert_eq!(
            d.relations("carol"),
            Relations {
                team: Some("emea".into()),
                manages: vec!["emea".into()]
            }
        );
        assert_eq!(d.relations("stranger"), Relations::default());
        let o = d.order("o-2").unwrap();
        assert_eq!(
            (o.owner.as_str(), o.team.as_str(), o.confidential),
            ("alice", "emea", true)
        );
        assert!(d.order("o-9").is_none());
    }

    #[test]
    fn inconsistent_data_is_refused() {
        let bad = [
            (
                r#"{"people":[{"sub":"a","team":"x"}]}"#,
                DataError::UnknownTeam("x".into()),
            ),
            (
                r#"{"teams":[{"id":"x","managers":["m"]}]}"#,
                DataError::UnknownPerson("m".into()),
            ),
            (
                r#"{"teams":[{"id":"x"},{"id":"x"}]}"#,
                DataError::Duplicate {
                    kind: "team",
                    id: "x".into(),
                },
            ),
            (
                r#"{"teams":[{"id":"x"}],"people":[{"sub":"a","team":"x"}],"orders":[{"id":"o","owner":"b","item":"i"}]}"#,
                DataError::UnknownPerson("b".into()),
            ),
        ];
        for (json, want) in bad {
            assert_eq!(Directory::from_json(json).unwrap_err(), want, "{json}");
        }
        assert!(matches!(
            Directory::from_json("{\"teams\":1}"),
            Err(DataError::Parse(_))
        ));
        assert!(matches!(
            Directory::from_json("{\"extra\":[]}"),
            Err(DataError::Parse(_))
        ));
    }

    #[test]
    fn drafts_get_fresh_ids_and_the_owners_team() {
        let d = Directory::from_json(
            r#"{"teams":[{"id":"t"}],"people":[{"sub":"a","team":"t"}],
                "orders":[{"id":"o-1","owner":"a","item":"x"}]}"#,
        )
        .unwrap();
        let o = d.draft("a", "paper", false).unwrap();
        assert_eq!((o.id.as_str(), o.team.as_str()), ("o-2", "t"));
        assert_eq!(d.draft("a", "paper", false).unwrap().id, "o-3");
        d.insert(&o).unwrap();
        assert!(d.insert(&o).is_err());
        assert_eq!(d.order("o-2").unwrap().item, "paper");
        assert_eq!(
            d.draft("z", "x", false).unwrap_err(),
            DataError::UnknownPerson("z".into())
        );
        assert!(d.draft("a", "", false).is_err());
        assert!(d.draft("a", &"x".repeat(MAX_ITEM_CHARS + 1), false).is_err());
    }

    #[test]
    fn managers_change_at_run_time() {
        let d = Directory::demo();
        d.set_manager("emea", "dave", true).unwrap();
        assert_eq!(d.relations("dave").manages, ["emea"]);
        d.set_manager("emea", "dave", false).unwrap();
        assert!(d.relations("dave").manages.is_empty());
        assert!(d.set_manager("nowhere", "dave", true).is_err());
        assert!(d.set_manager("emea", "nobody", true).is_err());
    }
}
