//! Graph checks before fitting.
//!
//! Two graphs on the models. The *comparison graph* joins two models that
//! share informative battles; each connected component is identified only up
//! to its own shift, so differences across components are undefined. The
//! *win graph* has an arc `i → j` when `i` beat `j` at least once (a tie,
//! where it carries information, is an arc both ways). Zermelo (1929) and
//! Ford (1957, "Solution of a ranking problem from binary comparisons",
//! Amer. Math. Monthly 64) showed that the Bradley-Terry MLE is finite iff
//! the win graph is strongly connected. When it is not, the likelihood's
//! supremum is reached in the limit where the strongly connected components
//! ("blocks") move infinitely far apart along the order of the condensation
//! DAG; within a block the limit is the block's own finite fit.
//!
//! Per component we keep the largest block as the *main* block (ties broken
//! by the lowest model index) and class every other model as above it
//! (reaches it in the win graph: `+inf`), below it (reached from it: `-inf`)
//! or not ordered against it (undefined).
//!
//! A first pass over the cells (`quick`) runs two union-finds: one over
//! compared pairs (the components) and one over pairs with arcs both ways.
//! When the two partitions coincide (the usual case for arena data), every
//! component is strongly connected and the blocks are the components.
//! Otherwise Tarjan's algorithm (1972) finds the blocks in O(K + arcs); it
//! runs with an explicit stack, so deep chains cannot overflow the call
//! stack.

use super::model::EffCell;

/// Where a model stands relative to the main block of its component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Standing {
    Finite = 0,
    PlusInf = 1,
    MinusInf = 2,
    Undefined = 3,
}

/// Adjacency in compressed rows.
pub(crate) struct Digraph {
    off: Vec<usize>,
    tgt: Vec<usize>,
}

impl Digraph {
    fn from_arcs(k: usize, arcs: &[(usize, usize)]) -> Self {
        let mut off = vec![0usize; k + 1];
        for &(u, _) in arcs {
            off[u + 1] += 1;
        }
        for u in 0..k {
            off[u + 1] += off[u];
        }
        let mut fill = off.clone();
        let mut tgt = vec![0usize; arcs.len()];
        for &(u, v) in arcs {
            tgt[fill[u]] = v;
            fill[u] += 1;
        }
        Self { off, tgt }
    }

    fn succ(&self, u: usize) -> &[usize] {
        &self.tgt[self.off[u]..self.off[u + 1]]
    }
}

/// Win graph and its reverse.
pub(crate) fn win_graph(k: usize, cells: &[EffCell]) -> (Digraph, Digraph) {
    let mut arcs = Vec::with_capacity(2 * cells.len());
    for c in cells {
        if c.wi > 0.0 || c.t > 0.0 {
            arcs.push((c.i, c.j));
        }
        if c.wj > 0.0 || c.t > 0.0 {
            arcs.push((c.j, c.i));
        }
    }
    let rev: Vec<(usize, usize)> = arcs.iter().map(|&(u, v)| (v, u)).collect();
    (Digraph::from_arcs(k, &arcs), Digraph::from_arcs(k, &rev))
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

/// Relabel ids (each below `ids.len()`) in order of first appearance over
/// models 0..k.
fn renumber(ids: &[u32]) -> Vec<u32> {
    let mut map = vec![u32::MAX; ids.len()];
    let mut next = 0;
    ids.iter()
        .map(|&id| {
            let m = &mut map[id as usize];
            if *m == u32::MAX {
                *m = next;
                next += 1;
            }
            *m
        })
        .collect()
}

/// Join the sets of `a` and `b`; true when they were apart.
fn union(parent: &mut [usize], a: usize, b: usize) -> bool {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        parent[ra.max(rb)] = ra.min(rb);
    }
    ra != rb
}

/// What one pass over the cells tells: components, models that never win
/// or never lose, and whether every component is strongly connected in the
/// win graph.
pub(crate) struct Quick {
    pub component: Vec<u32>,
    pub never_win: Vec<u32>,
    pub never_lose: Vec<u32>,
    /// True when the pairs compared both ways already join each component:
    /// then every component is one block and Tarjan is not needed.
    pub strongly_connected: bool,
}

/// One pass with two union-finds: over all compared pairs (components) and
/// over pairs with arcs both ways. The second partition refines the blocks,
/// so when the two coincide the blocks are the components (the usual case
/// for arena data, where almost every pair has wins both ways).
///
/// The pass stops as soon as the both-ways pairs join all `k ≥ 2` models:
/// the answer is then known (one component, one block, every model with a
/// win and a loss), and on a dense arena that happens within the first few
/// thousand of the `K²/2` cells.
pub(crate) fn quick(k: usize, cells: &[EffCell]) -> Quick {
    let mut comp: Vec<usize> = (0..k).collect();
    let mut both: Vec<usize> = (0..k).collect();
    let (mut has_out, mut has_in) = (vec![false; k], vec![false; k]);
    let mut both_joins = 0;
    for c in cells.iter().filter(|c| c.total() > 0.0) {
        union(&mut comp, c.i, c.j);
        let (fwd, back) = (c.wi > 0.0 || c.t > 0.0, c.wj > 0.0 || c.t > 0.0);
        if fwd && back && union(&mut both, c.i, c.j) {
            both_joins += 1;
            if both_joins + 1 == k {
                // Every model is in a pair compared both ways.
                has_out.fill(true);
                has_in.fill(true);
                break;
            }
        }
        has_out[c.i] |= fwd;
        has_in[c.j] |= fwd;
        has_out[c.j] |= back;
        has_in[c.i] |= back;
    }
    let mut strongly_connected = true;
    let roots: Vec<u32> = (0..k)
        .map(|u| {
            let r = find(&mut comp, u);
            strongly_connected &= find(&mut both, u) == r;
            r as u32
        })
        .collect();
    let pick = |f: &[bool]| (0..k).filter(|&u| !f[u]).map(|u| u as u32).collect();
    Quick {
        component: renumber(&roots),
        never_win: pick(&has_out),
        never_lose: pick(&has_in),
        strongly_connected,
    }
}

/// Tarjan's bookkeeping, kept in one place so the explicit-stack loop can
/// update it from two spots.
struct Tarjan {
    index: Vec<usize>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    call: Vec<(usize, usize)>,
    next: usize,
}

impl Tarjan {
    const NONE: usize = usize::MAX;

    fn visit(&mut self, v: usize) {
        self.index[v] = self.next;
        self.low[v] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        self.call.push((v, 0));
    }
}

/// Strongly connected components (blocks) of `g`, numbered by their lowest
/// model index.
pub(crate) fn blocks(k: usize, g: &Digraph) -> Vec<u32> {
    let mut t = Tarjan {
        index: vec![Tarjan::NONE; k],
        low: vec![0; k],
        on_stack: vec![false; k],
        stack: Vec::new(),
        call: Vec::new(),
        next: 0,
    };
    let (mut block, mut n_blocks) = (vec![0u32; k], 0u32);
    for root in 0..k {
        if t.index[root] != Tarjan::NONE {
            continue;
        }
        t.visit(root);
        while let Some(&(v, pos)) = t.call.last() {
            if let Some(&w) = g.succ(v).get(pos) {
                t.call.last_mut().expect("non-empty").1 += 1;
                if t.index[w] == Tarjan::NONE {
                    t.visit(w);
                } else if t.on_stack[w] {
                    t.low[v] = t.low[v].min(t.index[w]);
                }
                continue;
            }
            t.call.pop();
            if let Some(&(u, _)) = t.call.last() {
                t.low[u] = t.low[u].min(t.low[v]);
            }
            if t.low[v] == t.index[v] {
                while let Some(w) = t.stack.pop() {
                    t.on_stack[w] = false;
                    block[w] = n_blocks;
                    if w == v {
                        break;
                    }
                }
                n_blocks += 1;
            }
        }
    }
    renumber(&block)
}

/// The main block of each component: the one with most models, ties broken
/// by the lowest model index (blocks are numbered in that order).
pub(crate) fn main_blocks(component: &[u32], block: &[u32]) -> Vec<u32> {
    let n_comp = component.iter().max().map_or(0, |m| *m as usize + 1);
    let n_block = block.iter().max().map_or(0, |m| *m as usize + 1);
    let mut size = vec![0usize; n_block];
    let mut comp_of = vec![0u32; n_block];
    for (c, b) in component.iter().zip(block) {
        size[*b as usize] += 1;
        comp_of[*b as usize] = *c;
    }
    let mut best: Vec<Option<u32>> = vec![None; n_comp];
    for b in 0..n_block {
        let c = comp_of[b] as usize;
        if best[c].is_none_or(|m| size[b] > size[m as usize]) {
            best[c] = Some(b as u32);
        }
    }
    best.into_iter().map(|b| b.unwrap_or(0)).collect()
}

fn reach(g: &Digraph, start: &[usize], k: usize) -> Vec<bool> {
    let mut seen = vec![false; k];
    let mut todo = start.to_vec();
    for &s in start {
        seen[s] = true;
    }
    while let Some(u) = todo.pop() {
        for &v in g.succ(u) {
            if !seen[v] {
                seen[v] = true;
                todo.push(v);
            }
        }
    }
    seen
}

/// Standing of each model against the main block of its component.
pub(crate) fn standings(
    fwd: &Digraph,
    rev: &Digraph,
    block: &[u32],
    main: &[u32],
    component: &[u32],
) -> Vec<Standing> {
    let k = block.len();
    let in_main: Vec<usize> = (0..k)
        .filter(|&u| block[u] == main[component[u] as usize])
        .collect();
    let below = reach(fwd, &in_main, k);
    let above = reach(rev, &in_main, k);
    (0..k)
        .map(|u| {
            if block[u] == main[component[u] as usize] {
                Standing::Finite
            } else if above[u] {
                Standing::PlusInf
            } else if below[u] {
                Standing::MinusInf
            } else {
                Standing::Undefined
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(i: usize, j: usize, wi: f64, wj: f64) -> EffCell {
        EffCell {
            i,
            j,
            wi,
            wj,
            t: 0.0,
        }
    }

    #[test]
    fn components_and_blocks() {
        // 0 and 1 beat each other; both beat 2; 3-4 apart, 4 never wins.
        let cells = [
            cell(0, 1, 1.0, 1.0),
            cell(0, 2, 1.0, 0.0),
            cell(1, 2, 2.0, 0.0),
            cell(3, 4, 1.0, 0.0),
        ];
        let q = quick(5, &cells);
        let comp = q.component;
        assert_eq!(comp, vec![0, 0, 0, 1, 1]);
        assert!(!q.strongly_connected);
        let (f, r) = win_graph(5, &cells);
        let blk = blocks(5, &f);
        assert_eq!(blk, vec![0, 0, 1, 2, 3]);
        let main = main_blocks(&comp, &blk);
        assert_eq!(main, vec![0, 2]);
        let st = standings(&f, &r, &blk, &main, &comp);
        use Standing::*;
        assert_eq!(st, vec![Finite, Finite, MinusInf, Finite, MinusInf]);
        assert_eq!((q.never_win, q.never_lose), (vec![2, 4], vec![3]));
    }

    #[test]
    fn long_chain_has_singleton_blocks_and_no_stack_overflow() {
        let k = 200_000;
        let cells: Vec<EffCell> = (0..k - 1).map(|u| cell(u, u + 1, 1.0, 0.0)).collect();
        let (f, r) = win_graph(k, &cells);
        let blk = blocks(k, &f);
        assert_eq!(blk.iter().max(), Some(&(k as u32 - 1)));
        let comp = quick(k, &cells).component;
        let st = standings(&f, &r, &blk, &main_blocks(&comp, &blk), &comp);
        assert_eq!(st[0], Standing::Finite);
        assert!(st[1..].iter().all(|s| *s == Standing::MinusInf));
    }

    #[test]
    fn unordered_block_is_undefined() {
        // 0 beats 1, 2 beats 1, and 0,3 form the main block.
        let cells = [
            cell(0, 1, 1.0, 0.0),
            cell(1, 2, 0.0, 1.0),
            cell(0, 3, 1.0, 1.0),
        ];
        let comp = quick(4, &cells).component;
        let (f, r) = win_graph(4, &cells);
        let blk = blocks(4, &f);
        let st = standings(&f, &r, &blk, &main_blocks(&comp, &blk), &comp);
        assert_eq!(
            st,
            vec![
                Standing::Finite,
                Standing::MinusInf,
                Standing::Undefined,
                Standing::Finite
            ]
        );
    }

    /// Labels of the components of the pairs that `join`, by flooding.
    fn flood(k: usize, cells: &[&EffCell], join: impl Fn(&EffCell) -> bool) -> Vec<u32> {
        let mut label = vec![u32::MAX; k];
        let mut next = 0;
        for s in 0..k {
            if label[s] != u32::MAX {
                continue;
            }
            let mut todo = vec![s];
            label[s] = next;
            while let Some(u) = todo.pop() {
                for c in cells.iter().filter(|c| join(c)) {
                    for (x, y) in [(c.i, c.j), (c.j, c.i)] {
                        if x == u && label[y] == u32::MAX {
                            label[y] = next;
                            todo.push(y);
                        }
                    }
                }
            }
            next += 1;
        }
        label
    }

    /// `quick` from first principles: components by flooding the compared
    /// pairs, the same for the pairs compared both ways, never-win /
    /// never-lose by a scan.
    fn quick_reference(k: usize, cells: &[EffCell]) -> Quick {
        let live: Vec<&EffCell> = cells.iter().filter(|c| c.total() > 0.0).collect();
        let fwd = |c: &EffCell| c.wi > 0.0 || c.t > 0.0;
        let back = |c: &EffCell| c.wj > 0.0 || c.t > 0.0;
        let component = flood(k, &live, |_| true);
        let both = flood(k, &live, |c| fwd(c) && back(c));
        let wins = |u: usize| {
            live.iter()
                .any(|c| (c.i == u && fwd(c)) || (c.j == u && back(c)))
        };
        let loses = |u: usize| {
            live.iter()
                .any(|c| (c.i == u && back(c)) || (c.j == u && fwd(c)))
        };
        Quick {
            strongly_connected: both == component,
            component,
            never_win: (0..k).filter(|&u| !wins(u)).map(|u| u as u32).collect(),
            never_lose: (0..k).filter(|&u| !loses(u)).map(|u| u as u32).collect(),
        }
    }

    #[test]
    fn quick_pass_equals_the_reference_and_stops_early_only_when_sound() {
        // Dense schedules (the pass stops early) and sparse ones with one-way
        // pairs, ties and empty cells (it runs to the end).
        let mut state = 7u64;
        let mut draw = |m: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % m
        };
        for trial in 0..300 {
            let k = 2 + draw(12) as usize;
            let density = [10, 40, 90][trial % 3];
            let mut cells = Vec::new();
            for i in 0..k {
                for j in i + 1..k {
                    if draw(100) < density {
                        let w = |d: u64| if d < 45 { 0.0 } else { 1.0 + d as f64 };
                        let c = EffCell {
                            i,
                            j,
                            wi: w(draw(100)),
                            wj: w(draw(100)),
                            t: if draw(10) == 0 { 1.0 } else { 0.0 },
                        };
                        cells.push(c);
                    }
                }
            }
            let (q, r) = (quick(k, &cells), quick_reference(k, &cells));
            assert_eq!(q.component, r.component, "trial {trial}");
            assert_eq!(q.strongly_connected, r.strongly_connected, "trial {trial}");
            assert_eq!(q.never_win, r.never_win, "trial {trial}");
            assert_eq!(q.never_lose, r.never_lose, "trial {trial}");
            if q.strongly_connected {
                let (f, _) = win_graph(k, &cells);
                assert_eq!(blocks(k, &f), q.component, "trial {trial}: Tarjan");
            }
        }
    }

    #[test]
    fn quick_pass_agrees_with_tarjan_when_strongly_connected() {
        // A 3-cycle of one-way wins (strongly connected only through the
        // cycle), a pair with wins both ways, a tie-only pair and an
        // isolated model 6.
        let mut cells = vec![
            cell(0, 1, 1.0, 0.0),
            cell(1, 2, 1.0, 0.0),
            cell(0, 2, 0.0, 1.0),
            cell(3, 4, 2.0, 1.0),
        ];
        cells.push(EffCell {
            t: 1.0,
            ..cell(4, 5, 0.0, 0.0)
        });
        let q = quick(7, &cells);
        assert!(!q.strongly_connected, "the cycle has no two-way pair");
        assert_eq!(q.component, vec![0, 0, 0, 1, 1, 1, 2]);
        assert_eq!((q.never_win, q.never_lose), (vec![6], vec![6]));
        let (f, _) = win_graph(7, &cells);
        assert_eq!(blocks(7, &f), q.component, "Tarjan finds the same blocks");
        cells[0].wj = 1.0;
        cells[1].wj = 1.0;
        let q = quick(7, &cells);
        assert!(q.strongly_connected);
        let (f, _) = win_graph(7, &cells);
        assert_eq!(blocks(7, &f), q.component);
    }
}
