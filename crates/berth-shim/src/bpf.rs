//! A shorter equivalent of a seccomp program, checked before it is used.
//!
//! libseccomp compiles Docker's default profile (three architectures, ≈ 330 allowed syscalls
//! each) into ≈ 980 instructions, nearly all of them one `jeq #nr` per syscall in a linear chain.
//! The kernel's cost of installing a filter grows with its length: on this project's 2-core VM,
//! ≈ 1.5–3.6 ms for that program at every container start and every exec (bench/RESULTS.md).
//! [`shorten`] replaces each such chain of comparisons of the syscall number by a binary search
//! over ranges of numbers that lead to the same place, and leaves every other instruction (the
//! architecture checks, the argument comparisons, the returns) as it was. The result is used only
//! if [`equivalent`] finds that both programs return the same action for every syscall number
//! and architecture that matters (each constant the programs compare with, and its neighbours:
//! between two such constants neither program can tell numbers apart), with several argument
//! vectors each; otherwise the original program stays.

/// `sizeof(struct seccomp_data)`.
const DATA_LEN: u32 = 64;
/// The kernel's limit on a classic BPF program's length (`BPF_MAXINSNS`).
const MAX_INSNS: usize = 4096;

// Classic BPF opcodes (linux/bpf_common.h).
const LD_W_ABS: u16 = 0x20;
const JMP: u16 = 0x05;
const JA: u16 = 0x05;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const RET: u16 = 0x06;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

pub(crate) fn decode(program: &[u8]) -> Option<Vec<Insn>> {
    if program.is_empty() || !program.len().is_multiple_of(8) || program.len() / 8 > MAX_INSNS {
        return None;
    }
    Some(
        program
            .chunks_exact(8)
            .map(|c| Insn {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

fn encode(insns: &[Insn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(insns.len() * 8);
    for i in insns {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
    out
}

fn is_jump(code: u16) -> bool {
    code & 0x07 == JMP
}

/// A conditional jump on a constant (`jeq`/`jgt`/`jge`/`jset` with `K`).
fn is_cond_k(code: u16) -> bool {
    is_jump(code) && code & 0xf0 != 0 && code & 0x08 == 0
}

/// The instructions `i` may continue at (forward only, as classic BPF allows).
fn successors(insns: &[Insn], at: usize) -> Vec<usize> {
    let i = insns[at];
    if i.code & 0x07 == RET {
        vec![]
    } else if i.code == JA {
        vec![at + 1 + i.k as usize]
    } else if is_jump(i.code) {
        vec![at + 1 + i.jt as usize, at + 1 + i.jf as usize]
    } else {
        vec![at + 1]
    }
}

/// Where a jump of the output goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Label {
    /// An instruction of the input program.
    Old(usize),
    /// An instruction added by [`shorten`].
    New(usize),
}

#[derive(Clone, Copy, Debug)]
enum Node {
    /// Anything but a jump, kept as it was (a non-return falls through to the next node).
    Plain(Insn),
    Ja(Label),
    Cond {
        code: u16,
        k: u32,
        t: Label,
        f: Label,
    },
}

/// A range of syscall numbers and where it goes.
#[derive(Clone, Copy, Debug)]
struct Run {
    lo: u32,
    hi: u32,
    to: Label,
}

struct Out {
    nodes: Vec<(Option<Label>, Node)>,
    next_new: usize,
}

impl Out {
    fn new_label(&mut self) -> Label {
        self.next_new += 1;
        Label::New(self.next_new - 1)
    }

    fn push(&mut self, label: Option<Label>, node: Node) {
        self.nodes.push((label, node));
    }

    /// Emits a binary search of `runs` (sorted, disjoint) for a value known to lie in
    /// `lo..=hi`; values in no run go to `default`. Returns where the search starts, placing its
    /// first node at the current end when it needs one.
    fn search(&mut self, runs: &[Run], lo: u32, hi: u32, default: Label) -> Label {
        match runs {
            [] => default,
            [r] if r.lo <= lo && r.hi >= hi => r.to,
            [r] => {
                let (need_lo, need_hi) = (r.lo > lo, r.hi < hi);
                let here = self.new_label();
                match (need_lo, need_hi) {
                    (false, false) => unreachable!("covered by the arm above"),
                    (true, false) => self.push(
                        Some(here),
                        Node::Cond {
                            code: JGE_K,
                            k: r.lo,
                            t: r.to,
                            f: default,
                        },
                    ),
                    (false, true) => self.push(
                        Some(here),
                        Node::Cond {
                            code: JGT_K,
                            k: r.hi,
                            t: default,
                            f: r.to,
                        },
                    ),
                    (true, true) if r.lo == r.hi => self.push(
                        Some(here),
                        Node::Cond {
                            code: JEQ_K,
                            k: r.lo,
                            t: r.to,
                            f: default,
                        },
                    ),
                    (true, true) => {
                        let upper = self.new_label();
                        self.push(
                            Some(here),
                            Node::Cond {
                                code: JGE_K,
                                k: r.lo,
                                t: upper,
                                f: default,
                            },
                        );
                        self.push(
                            Some(upper),
                            Node::Cond {
                                code: JGT_K,
                                k: r.hi,
                                t: default,
                                f: r.to,
                            },
                        );
                    }
                }
                here
            }
            _ => {
                let mid = runs.len() / 2;
                let pivot = runs[mid].lo;
                let here = self.new_label();
                let at = self.nodes.len();
                self.push(
                    Some(here),
                    Node::Plain(Insn {
                        code: 0,
                        jt: 0,
                        jf: 0,
                        k: 0,
                    }),
                );
                let right = self.search(&runs[mid..], pivot, hi, default);
                let left = self.search(&runs[..mid], lo, pivot - 1, default);
                self.nodes[at].1 = Node::Cond {
                    code: JGE_K,
                    k: pivot,
                    t: right,
                    f: left,
                };
                here
            }
        }
    }
}

/// Which 32-bit word of `seccomp_data` register A holds before each instruction, where every
/// path agrees (`None`: unknown, or computed).
fn a_sources(insns: &[Insn]) -> Option<Vec<Option<u32>>> {
    // Jumps only go forward: one pass in order sees every predecessor first.
    let mut state: Vec<Option<Option<u32>>> = vec![None; insns.len()];
    state[0] = Some(None);
    for at in 0..insns.len() {
        let Some(a) = state[at] else { continue };
        let i = insns[at];
        let after = if i.code == LD_W_ABS {
            Some(i.k)
        } else if is_jump(i.code) || i.code & 0x07 == RET || matches!(i.code & 0x07, 0x01..=0x03) {
            // Jumps, returns, X loads and stores leave A as it was.
            a
        } else {
            None
        };
        for s in successors(insns, at) {
            if s >= insns.len() {
                return None;
            }
            state[s] = Some(match state[s] {
                None => after,
                Some(prev) if prev == after => prev,
                Some(_) => None,
            });
        }
    }
    Some(state.into_iter().map(Option::flatten).collect())
}

/// The shorter program, or `None` when there is nothing to gain or the input is not a program
/// this understands. Not yet checked: see [`shortened`].
fn shorten(insns: &[Insn]) -> Option<Vec<Insn>> {
    let n = insns.len();
    let src = a_sources(insns)?;
    // Who jumps (or falls) where.
    let mut refs = vec![0usize; n];
    for at in 0..n {
        for s in successors(insns, at) {
            *refs.get_mut(s)? += 1;
        }
    }
    let cond = |at: usize| insns[at].code == JEQ_K && src[at] == Some(0);
    let mut out = Out {
        nodes: Vec::with_capacity(n),
        next_new: 0,
    };
    let old = |at: usize| Label::Old(at);
    let mut at = 0;
    let mut changed = false;
    while at < n {
        // A chain: `jeq #nr` instructions, each falling through to the next on a mismatch,
        // entered only at its first.
        let mut end = at;
        if cond(at) {
            while end + 1 < n && cond(end + 1) && insns[end].jf == 0 && refs[end + 1] == 1 {
                end += 1;
            }
        }
        if end >= at + 3 {
            let default = old(end + 1 + insns[end].jf as usize);
            let mut seen = std::collections::BTreeMap::new();
            for (m, i) in insns.iter().enumerate().take(end + 1).skip(at) {
                seen.entry(i.k).or_insert(old(m + 1 + i.jt as usize));
            }
            let mut runs: Vec<Run> = Vec::new();
            for (&k, &to) in &seen {
                match runs.last_mut() {
                    Some(r) if r.to == to && r.hi.checked_add(1) == Some(k) => r.hi = k,
                    _ => runs.push(Run { lo: k, hi: k, to }),
                }
            }
            let first = out.nodes.len();
            let root = out.search(&runs, 0, u32::MAX, default);
            if out.nodes.len() == first {
                out.push(None, Node::Ja(root));
            }
            // The chain's first instruction is where the search starts (nothing jumps to the
            // search's own root label: it is only returned).
            out.nodes[first].0 = Some(old(at));
            changed = true;
            at = end + 1;
            continue;
        }
        let i = insns[at];
        let node = if i.code == JA {
            Node::Ja(old(at + 1 + i.k as usize))
        } else if is_jump(i.code) {
            Node::Cond {
                code: i.code,
                k: i.k,
                t: old(at + 1 + i.jt as usize),
                f: old(at + 1 + i.jf as usize),
            }
        } else {
            Node::Plain(i)
        };
        out.push(Some(old(at)), node);
        at += 1;
    }
    if !changed {
        return None;
    }
    let insns = layout(out.nodes, out.next_new)?;
    (insns.len() < n).then_some(insns)
}

/// Assigns positions and encodes the jumps, adding a `ja` wherever a conditional jump would go
/// further than its 8-bit offset reaches.
fn layout(mut nodes: Vec<(Option<Label>, Node)>, mut fresh: usize) -> Option<Vec<Insn>> {
    loop {
        if nodes.len() > MAX_INSNS {
            return None;
        }
        let pos: std::collections::HashMap<Label, usize> = nodes
            .iter()
            .enumerate()
            .filter_map(|(p, (l, _))| l.map(|l| (l, p)))
            .collect();
        let off = |p: usize, l: Label| -> Option<usize> { pos.get(&l)?.checked_sub(p + 1) };
        let mut far = None;
        let mut out = Vec::with_capacity(nodes.len());
        for (p, (_, node)) in nodes.iter().enumerate() {
            out.push(match *node {
                Node::Plain(i) => i,
                Node::Ja(t) => Insn {
                    code: JA,
                    jt: 0,
                    jf: 0,
                    k: u32::try_from(off(p, t)?).ok()?,
                },
                Node::Cond { code, k, t, f } => {
                    let (ot, of) = (off(p, t)?, off(p, f)?);
                    if ot > 255 || of > 255 {
                        far = Some((p, ot > 255));
                        break;
                    }
                    Insn {
                        code,
                        jt: ot as u8,
                        jf: of as u8,
                        k,
                    }
                }
            });
        }
        let Some((p, true_side)) = far else {
            return Some(out);
        };
        // `jcond → far` becomes `jcond → next; next: ja far`.
        let Node::Cond { code, k, t, f } = nodes[p].1 else {
            return None;
        };
        let label = Label::New(fresh);
        fresh += 1;
        let (target, node) = if true_side {
            (t, Node::Cond { code, k, t: label, f })
        } else {
            (f, Node::Cond { code, k, t, f: label })
        };
        nodes[p].1 = node;
        nodes.insert(p + 1, (Some(label), Node::Ja(target)));
    }
}

/// Runs `insns` on `data` (`seccomp_data` as 16 native-endian words) as the kernel would.
/// Returns the action and the words read, or `None` for anything the kernel would reject.
pub(crate) fn run(insns: &[Insn], data: &[u32; 16]) -> Option<(u32, u16)> {
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut read = 0u16;
    let mut pc = 0usize;
    loop {
        let i = *insns.get(pc)?;
        pc += 1;
        let src = if i.code & 0x08 != 0 { x } else { i.k };
        match i.code {
            LD_W_ABS => {
                if i.k % 4 != 0 || i.k >= DATA_LEN {
                    return None;
                }
                read |= 1 << (i.k / 4);
                a = data[(i.k / 4) as usize];
            }
            0x80 => a = DATA_LEN,                    // ld #len
            0x81 => x = DATA_LEN,                    // ldx #len
            0x00 => a = i.k,                         // ld #k
            0x01 => x = i.k,                         // ldx #k
            0x60 => a = *mem.get(i.k as usize)?,     // ld M[k]
            0x61 => x = *mem.get(i.k as usize)?,     // ldx M[k]
            0x02 => *mem.get_mut(i.k as usize)? = a, // st M[k]
            0x03 => *mem.get_mut(i.k as usize)? = x, // stx M[k]
            0x07 => x = a,                           // tax
            0x87 => a = x,                           // txa
            0x06 => return Some((i.k, read)),        // ret #k
            0x16 => return Some((a, read)),          // ret a
            JA => pc = pc.checked_add(i.k as usize)?,
            c if c & 0x07 == 0x04 => {
                a = match c & 0xf0 {
                    0x00 => a.wrapping_add(src),
                    0x10 => a.wrapping_sub(src),
                    0x20 => a.wrapping_mul(src),
                    0x30 => a.checked_div(src)?,
                    0x40 => a | src,
                    0x50 => a & src,
                    0x60 => a.checked_shl(src).unwrap_or(0),
                    0x70 => a.checked_shr(src).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0x90 => a.checked_rem(src)?,
                    0xa0 => a ^ src,
                    _ => return None,
                }
            }
            c if is_jump(c) => {
                let taken = match c & 0xf0 {
                    0x10 => a == src,
                    0x20 => a > src,
                    0x30 => a >= src,
                    0x40 => a & src != 0,
                    _ => return None,
                };
                pc += if taken { i.jt } else { i.jf } as usize;
            }
            _ => return None,
        }
    }
}

/// Whether `a` and `b` return the same action for every architecture and syscall number
/// either compares with (and their neighbours: between two such constants neither program can
/// tell values apart, as both compare only with `jeq`/`jgt`/`jge`), and, where a program reads
/// the arguments, for each constant it compares them with.
fn equivalent(a: &[Insn], b: &[Insn]) -> bool {
    // The constants each word of `seccomp_data` is compared with, and their neighbours.
    let mut consts: [std::collections::BTreeSet<u32>; 16] = Default::default();
    for word in consts.iter_mut() {
        word.extend([0, 1, u32::MAX]);
    }
    // Constants compared with computed values (a masked argument) and the masks: tried in
    // every argument word.
    let mut computed = std::collections::BTreeSet::new();
    for p in [a, b] {
        let Some(src) = a_sources(p) else { return false };
        for (i, s) in p.iter().zip(&src) {
            let near = [i.k.wrapping_sub(1), i.k, i.k.wrapping_add(1)];
            if i.code & 0x07 == 0x04 && i.code & 0x08 == 0 {
                computed.extend(near);
                computed.insert(!i.k);
            }
            if !is_jump(i.code) || i.code == JA {
                continue;
            }
            match s {
                // A bit test or a register comparison on the number or the architecture: not
                // what this check covers.
                Some(0 | 4) if i.code & 0xf0 == 0x40 || !is_cond_k(i.code) => return false,
                Some(w) => consts[(*w / 4) as usize].extend(near),
                None => computed.extend(near),
            }
        }
    }
    for word in consts.iter_mut().skip(4) {
        word.extend(computed.iter().copied());
    }
    let verdict = |p: &[Insn], d: &[u32; 16]| run(p, d);
    for &arch in &consts[1] {
        for &nr in &consts[0] {
            let mut data = [0u32; 16];
            data[0] = nr;
            data[1] = arch;
            let (ra, rb) = (verdict(a, &data), verdict(b, &data));
            if ra.map(|r| r.0) != rb.map(|r| r.0) {
                return false;
            }
            let read = ra.map_or(0, |r| r.1) | rb.map_or(0, |r| r.1);
            // Arguments read: each constant in each argument word, the others 0, then all at once.
            for word in 4..16 {
                if read & (1 << word) == 0 {
                    continue;
                }
                for &c in &consts[word] {
                    let mut d = data;
                    d[word] = c;
                    if verdict(a, &d).map(|r| r.0) != verdict(b, &d).map(|r| r.0) {
                        return false;
                    }
                    let mut all = data;
                    all[4..].fill(c);
                    if verdict(a, &all).map(|r| r.0) != verdict(b, &all).map(|r| r.0) {
                        return false;
                    }
                }
            }
        }
    }
    true
}

/// `program` shortened when that is possible and checked to be equivalent; else unchanged.
pub(crate) fn shortened(program: Vec<u8>) -> Vec<u8> {
    let Some(insns) = decode(&program) else {
        return program;
    };
    match shorten(&insns) {
        Some(short) if equivalent(&insns, &short) => encode(&short),
        _ => program,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jeq(k: u32, jt: u8, jf: u8) -> Insn {
        Insn {
            code: JEQ_K,
            jt,
            jf,
            k,
        }
    }
    fn ret(k: u32) -> Insn {
        Insn {
            code: RET,
            jt: 0,
            jf: 0,
            k,
        }
    }
    fn ld(k: u32) -> Insn {
        Insn {
            code: LD_W_ABS,
            jt: 0,
            jf: 0,
            k,
        }
    }

    const ALLOW: u32 = 0x7fff_0000;
    const EPERM: u32 = 0x0005_0001;

    /// An allow-list of `nrs` as libseccomp lays it out: one `jeq` per number.
    fn allow_list(nrs: &[u32]) -> Vec<Insn> {
        let n = nrs.len();
        let mut p = vec![ld(0)];
        for (i, &nr) in nrs.iter().enumerate() {
            p.push(jeq(nr, (n - i) as u8, 0));
        }
        p.push(ret(EPERM));
        p.push(ret(ALLOW));
        p
    }

    fn verdict(p: &[Insn], nr: u32) -> u32 {
        let mut d = [0u32; 16];
        d[0] = nr;
        run(p, &d).unwrap().0
    }

    #[test]
    fn a_chain_becomes_a_search_over_ranges_with_the_same_verdicts() {
        let nrs: Vec<u32> = (0..60)
            .filter(|n| n % 7 != 3)
            .chain([100, 101, 102, 200])
            .collect();
        let p = allow_list(&nrs);
        let s = shorten(&p).expect("shorter");
        assert!(s.len() < p.len() / 2, "{} -> {}", p.len(), s.len());
        for nr in 0..300 {
            assert_eq!(verdict(&p, nr), verdict(&s, nr), "nr {nr}");
        }
        assert_eq!(verdict(&s, u32::MAX), EPERM);
        assert!(equivalent(&p, &s));
    }

    #[test]
    fn jumps_beyond_an_offset_byte_go_through_ja() {
        // A jump 300 nodes ahead on its true side, 1 on its false side.
        let far = Label::New(0);
        let mut nodes = vec![
            (None, Node::Plain(ld(0))),
            (
                None,
                Node::Cond {
                    code: JEQ_K,
                    k: 7,
                    t: far,
                    f: Label::Old(0),
                },
            ),
            (Some(Label::Old(0)), Node::Plain(ret(EPERM))),
        ];
        for _ in 0..300 {
            nodes.push((None, Node::Plain(ret(EPERM))));
        }
        nodes.push((Some(far), Node::Plain(ret(ALLOW))));
        let p = layout(nodes, 1).expect("laid out");
        assert_eq!(p.len(), 305, "one ja added");
        assert_eq!(p[2].code, JA);
        assert_eq!(verdict(&p, 7), ALLOW);
        assert_eq!(verdict(&p, 8), EPERM);
    }

    #[test]
    fn a_chain_entered_in_the_middle_is_split_there() {
        // ld nr; jeq 99 → into the middle of the chain (its `jeq 2`); jeq 1..5 → allow.
        let mut q = vec![ld(0), jeq(99, 1, 0)];
        q.extend([
            jeq(1, 5, 0),
            jeq(2, 4, 0),
            jeq(3, 3, 0),
            jeq(4, 2, 0),
            jeq(5, 1, 0),
        ]);
        q.push(ret(EPERM));
        q.push(ret(ALLOW));
        // The chain from `jeq 2` (4 comparisons) is rewritten; `jeq 1` stays before it.
        let s = shorten(&q).expect("shorter");
        for nr in 0..100 {
            assert_eq!(verdict(&q, nr), verdict(&s, nr), "nr {nr}");
        }
        assert!(equivalent(&q, &s));
    }

    #[test]
    fn a_different_program_is_not_equivalent() {
        let p = allow_list(&[1, 2, 3, 4, 5]);
        let q = allow_list(&[1, 2, 3, 4, 6]);
        assert!(!equivalent(&p, &q));
        assert!(equivalent(&p, &p));
    }

    #[test]
    fn dockers_default_profile_shrinks_and_keeps_its_verdicts() {
        let spec = berth_runtime::build_spec(&berth_runtime::ContainerSpec {
            id: "abc123".into(),
            rootfs: "/b/rootfs".into(),
            args: vec!["true".into()],
            ..Default::default()
        })
        .unwrap();
        let profile = spec.linux().as_ref().unwrap().seccomp().clone().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(dir.path().join("p")).unwrap();
        assert!(crate::seccomp::compile(&profile, &f).unwrap());
        let raw = std::fs::read(dir.path().join("p")).unwrap();
        let long = decode(&raw).unwrap();
        let short = shorten(&long).expect("shorter");
        assert!(short.len() * 2 < long.len(), "{} -> {}", long.len(), short.len());
        assert!(equivalent(&long, &short));
        // Spot checks on x86_64: read allowed, mount and kexec_load refused with EPERM,
        // clone3 refused with ENOSYS, personality only with the allowed arguments.
        let x86_64 = 0xc000_003e;
        let v = |p: &[Insn], nr: u32, arg0: u32| {
            let mut d = [0u32; 16];
            d[0] = nr;
            d[1] = x86_64;
            d[4] = arg0;
            run(p, &d).unwrap().0
        };
        for (nr, arg0) in [
            (0, 0),
            (165, 0),
            (246, 0),
            (435, 0),
            (135, 0),
            (135, 0xffff_ffff),
            (135, 3),
        ] {
            assert_eq!(v(&long, nr, arg0), v(&short, nr, arg0), "nr {nr} arg0 {arg0:#x}");
        }
        assert_eq!(v(&short, 0, 0), ALLOW);
        assert_ne!(v(&short, 165, 0), ALLOW);
        assert_eq!(shortened(raw.clone()), encode(&short));
    }
}
