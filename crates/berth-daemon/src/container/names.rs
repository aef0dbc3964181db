//! Generated container names: `<adjective>_<surname>` from word lists of our own (138 × 284 =
//! 39 192 pairs, more than Docker's), then a numeric suffix once random pairs collide.
//!
//! Picking a name is a bounded number of lookups in the taken set whatever the number of
//! containers ([`TRIES`] at most, then a name unique by construction), so it runs under the
//! container table's write lock, where the name is reserved, without holding other requests up:
//! the old generator (840 pairs) spun forever under that lock once every pair was taken.

/// Random plain pairs tried before suffixes.
const PLAIN: u32 = 8;
/// Pairs with a numeric suffix tried next; the suffix range widens ×10 every 4 tries (10 … 10⁶).
const SUFFIXED: u32 = 24;
/// Lookups at most before the fallback.
#[cfg(test)]
pub(crate) const TRIES: u32 = PLAIN + SUFFIXED + 1;

/// Two word lists; a name is `left_right`.
pub(crate) struct Words {
    pub left: &'static [&'static str],
    pub right: &'static [&'static str],
}

/// The daemon's generator.
pub(crate) const WORDS: Words = Words {
    left: ADJECTIVES,
    right: SURNAMES,
};

impl Words {
    /// A name `taken` says is free, for the container `id`: a random pair; after collisions a pair
    /// with a numeric suffix (`brave_curie7`, as Docker appends digits); when even those collide,
    /// the pair with the container's short ID, which no other generated name can hold.
    pub(crate) fn pick(
        &self,
        taken: impl Fn(&str) -> bool,
        id: &str,
        mut rand: impl FnMut() -> u64,
    ) -> String {
        let pair = |r: u64| {
            let a = (r & 0xffff_ffff) as usize % self.left.len();
            let b = (r >> 32) as usize % self.right.len();
            format!("{}_{}", self.left[a], self.right[b])
        };
        for _ in 0..PLAIN {
            let n = pair(rand());
            if !taken(&n) {
                return n;
            }
        }
        let mut range = 10;
        for i in 0..SUFFIXED {
            let n = format!("{}{}", pair(rand()), rand() % range);
            if !taken(&n) {
                return n;
            }
            if i % 4 == 3 {
                range *= 10;
            }
        }
        let short = &id[..id.len().min(12)];
        let n = format!("{}_{short}", pair(rand()));
        if !taken(&n) {
            return n;
        }
        // Only a user can have taken that (names are free-form): the full ID is the last resort.
        id.to_string()
    }
}

/// Random bits for [`Words::pick`].
pub(crate) fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).expect("getrandom");
    u64::from_le_bytes(b)
}

pub(crate) const ADJECTIVES: &[&str] = &[
    "able",
    "agile",
    "airy",
    "amber",
    "ample",
    "apt",
    "arcane",
    "ardent",
    "astute",
    "austere",
    "avid",
    "azure",
    "balmy",
    "blithe",
    "bold",
    "brave",
    "breezy",
    "brisk",
    "bright",
    "buoyant",
    "candid",
    "careful",
    "cheery",
    "chipper",
    "civil",
    "clear",
    "clever",
    "cosmic",
    "crisp",
    "curious",
    "dapper",
    "daring",
    "dauntless",
    "deft",
    "devout",
    "diligent",
    "dreamy",
    "droll",
    "dynamic",
    "earnest",
    "easy",
    "elated",
    "electric",
    "elegant",
    "eloquent",
    "epic",
    "fabled",
    "fair",
    "fearless",
    "festive",
    "fervent",
    "fierce",
    "fond",
    "frank",
    "fresh",
    "frugal",
    "gentle",
    "gifted",
    "glad",
    "gleaming",
    "golden",
    "graceful",
    "gracious",
    "grand",
    "hardy",
    "hearty",
    "honest",
    "humble",
    "ideal",
    "jaunty",
    "jovial",
    "joyful",
    "jubilant",
    "just",
    "kindly",
    "lively",
    "loyal",
    "lucky",
    "luminous",
    "mellow",
    "merry",
    "mighty",
    "mindful",
    "nimble",
    "noble",
    "patient",
    "placid",
    "playful",
    "plucky",
    "polite",
    "proud",
    "prudent",
    "quiet",
    "radiant",
    "rapid",
    "ready",
    "regal",
    "resolute",
    "robust",
    "rosy",
    "rustic",
    "sage",
    "savvy",
    "scenic",
    "sincere",
    "snappy",
    "solid",
    "spry",
    "stable",
    "stellar",
    "steady",
    "sturdy",
    "sunny",
    "superb",
    "swift",
    "tidy",
    "tranquil",
    "trusty",
    "valiant",
    "vivid",
    "warm",
    "wise",
    "witty",
    "zesty",
    "cordial",
    "crafty",
    "jolly",
    "keen",
    "lucid",
    "modest",
    "nifty",
    "serene",
    "sharp",
    "stoic",
    "tender",
    "upbeat",
    "vibrant",
    "zealous",
];

pub(crate) const SURNAMES: &[&str] = &[
    "abel",
    "agnesi",
    "alhazen",
    "ampere",
    "archimedes",
    "aryabhata",
    "avogadro",
    "babbage",
    "bacon",
    "banach",
    "bardeen",
    "bernoulli",
    "bessel",
    "bohr",
    "boltzmann",
    "boole",
    "born",
    "bose",
    "boyle",
    "bragg",
    "brahe",
    "brunel",
    "buffon",
    "cantor",
    "cardano",
    "carnot",
    "carson",
    "cauchy",
    "cavendish",
    "celsius",
    "chandrasekhar",
    "chebyshev",
    "clausius",
    "copernicus",
    "coulomb",
    "cray",
    "crick",
    "curie",
    "dalton",
    "darwin",
    "dedekind",
    "democritus",
    "descartes",
    "dijkstra",
    "dirac",
    "doppler",
    "edison",
    "ehrenfest",
    "einstein",
    "euclid",
    "euler",
    "faraday",
    "fermat",
    "fermi",
    "feynman",
    "fibonacci",
    "fleming",
    "foucault",
    "fourier",
    "franklin",
    "fresnel",
    "galois",
    "galvani",
    "gauss",
    "geiger",
    "gibbs",
    "godel",
    "goodall",
    "gosling",
    "hamilton",
    "hawking",
    "heisenberg",
    "helmholtz",
    "hertz",
    "hilbert",
    "hodgkin",
    "hooke",
    "hubble",
    "huygens",
    "jacobi",
    "joule",
    "kelvin",
    "kepler",
    "kirchhoff",
    "knuth",
    "kovalevskaya",
    "lagrange",
    "lamport",
    "laplace",
    "lavoisier",
    "leibniz",
    "lemaitre",
    "liskov",
    "lister",
    "lorentz",
    "lovelace",
    "lyell",
    "maxwell",
    "mcclintock",
    "meitner",
    "mendel",
    "mendeleev",
    "michelson",
    "millikan",
    "minkowski",
    "mobius",
    "morse",
    "napier",
    "newton",
    "noether",
    "nobel",
    "ohm",
    "oersted",
    "pascal",
    "pasteur",
    "pauli",
    "pauling",
    "peano",
    "planck",
    "poincare",
    "poisson",
    "ptolemy",
    "pythagoras",
    "raman",
    "ramanujan",
    "rayleigh",
    "riemann",
    "ritchie",
    "roentgen",
    "rutherford",
    "sagan",
    "salk",
    "schrodinger",
    "shannon",
    "snell",
    "somerville",
    "stokes",
    "tesla",
    "thales",
    "thomson",
    "torvalds",
    "turing",
    "volta",
    "wallace",
    "watt",
    "weber",
    "wiener",
    "wright",
    "yukawa",
    "zuse",
    "agassiz",
    "alvarez",
    "anning",
    "appleton",
    "arago",
    "aston",
    "audubon",
    "baird",
    "banting",
    "barton",
    "becquerel",
    "bell",
    "benz",
    "bethe",
    "birkeland",
    "blackwell",
    "bloch",
    "bunsen",
    "burbidge",
    "cajal",
    "cannon",
    "cerf",
    "chadwick",
    "compton",
    "conway",
    "coriolis",
    "cori",
    "cousteau",
    "crookes",
    "davy",
    "diesel",
    "dyson",
    "eddington",
    "elion",
    "engelbart",
    "eratosthenes",
    "fessenden",
    "fisher",
    "fitch",
    "flamsteed",
    "florey",
    "fraunhofer",
    "frisch",
    "gabor",
    "galton",
    "germain",
    "goddard",
    "guericke",
    "haber",
    "hahn",
    "haldane",
    "halley",
    "harvey",
    "heaviside",
    "henry",
    "herschel",
    "hess",
    "hevesy",
    "higgs",
    "hipparchus",
    "hollerith",
    "hopkins",
    "hoyle",
    "humboldt",
    "hutton",
    "jansky",
    "jenner",
    "kapitsa",
    "kilby",
    "koch",
    "kolmogorov",
    "kuiper",
    "landau",
    "langmuir",
    "leavitt",
    "leakey",
    "linnaeus",
    "lippmann",
    "lodge",
    "lyapunov",
    "mach",
    "marconi",
    "markov",
    "mercator",
    "messier",
    "mitchell",
    "moseley",
    "muller",
    "nernst",
    "newcomen",
    "nyquist",
    "oort",
    "ostrom",
    "parsons",
    "pavlov",
    "penrose",
    "perrin",
    "priestley",
    "purcell",
    "rabi",
    "ramsay",
    "reynolds",
    "richter",
    "sabin",
    "saha",
    "sakharov",
    "sanger",
    "seaborg",
    "siemens",
    "soddy",
    "stephenson",
    "stirling",
    "swan",
    "szilard",
    "tansley",
    "teller",
    "thorne",
    "townes",
    "tyndall",
    "urey",
    "vavilov",
    "venn",
    "vesalius",
    "wald",
    "watson",
    "wegener",
    "wheeler",
    "whitney",
    "wiles",
    "wilkins",
    "yalow",
    "zeeman",
    "zernike",
    "zwicky",
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::collections::HashSet;

    fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut s = seed;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        }
    }

    #[test]
    fn word_lists_are_unique_valid_and_docker_scale() {
        for list in [WORDS.left, WORDS.right] {
            let set: HashSet<_> = list.iter().collect();
            assert_eq!(set.len(), list.len(), "duplicate word");
            assert!(list
                .iter()
                .all(|w| !w.is_empty() && w.bytes().all(|c| c.is_ascii_lowercase())));
        }
        // Docker has about 25 000 pairs; ours must not be fewer.
        assert!(WORDS.left.len() * WORDS.right.len() >= 30_000);
        let n = WORDS.pick(|_| false, &"a".repeat(64), xorshift(7));
        assert!(berth_types::id::valid_container_name(&n), "{n}");
    }

    #[test]
    fn exhausted_tiny_word_list_still_gives_unique_names_without_looping() {
        // 2 × 2 = 4 pairs; 5000 containers: every later name needs a suffix or the ID fallback.
        let tiny = Words {
            left: &["a", "b"],
            right: &["x", "y"],
        };
        let taken = RefCell::new(HashSet::new());
        let mut rand = xorshift(42);
        for i in 0..5000u32 {
            let id = format!("{i:064x}");
            let lookups = Cell::new(0);
            let n = tiny.pick(
                |n| {
                    lookups.set(lookups.get() + 1);
                    taken.borrow().contains(n)
                },
                &id,
                &mut rand,
            );
            assert!(
                lookups.get() <= TRIES + 1,
                "{} lookups for name {i}",
                lookups.get()
            );
            assert!(berth_types::id::valid_container_name(&n), "{n}");
            assert!(taken.borrow_mut().insert(n.clone()), "duplicate name {n}");
        }
    }

    #[test]
    fn thousands_of_unnamed_creates_take_a_handful_of_lookups_each() {
        // The defect: at 840 containers the old generator looped forever. 3000 names from the
        // real lists: plain pairs almost always, never more than the bounded tries.
        let mut taken = HashSet::new();
        let mut rand = xorshift(1);
        let mut worst = 0;
        for i in 0..3000u32 {
            let lookups = Cell::new(0);
            let n = WORDS.pick(
                |n| {
                    lookups.set(lookups.get() + 1);
                    taken.contains(n)
                },
                &format!("{i:064x}"),
                &mut rand,
            );
            worst = worst.max(lookups.get());
            assert!(taken.insert(n));
        }
        // (Deterministic seed: a suffix was never needed.)
        assert!(worst <= PLAIN, "worst case {worst} lookups");
    }
}
