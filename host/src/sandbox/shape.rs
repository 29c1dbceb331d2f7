//! What a component is made of, read from its bytes before it is compiled: how many core
//! module instances it makes, how many linear memories and tables its modules define, and
//! how much linear memory it needs at start.
//!
//! Why read it ourselves: the pooling allocator refuses a component over its per-component
//! counts, or one whose memory at start is over `--max-memory`, with a message that names
//! neither the number nor the flag ("module memory does not fit in pooling allocator
//! requirements"). Knowing the shape first, `Handler::load` says which limit and by how much,
//! and `sque-host check` reports it. Language runtimes are the big case: componentize-py's
//! output makes 14 core instances (38 with `--stub-wasi`) and needs 12.4 MiB at start.

use wasmparser::{Instance, Parser, Payload};

/// The size of a wasm page when a memory does not say otherwise.
const DEFAULT_PAGE_BYTES: u64 = 64 << 10;

/// A component's shape (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// Core module instantiations, in this component and those nested in it.
    pub core_instances: u32,
    /// Linear memories its core modules define (imported ones are someone else's).
    pub memories: u32,
    /// Tables its core modules define.
    pub tables: u32,
    /// The initial size of its largest linear memory, in bytes.
    pub initial_memory: u64,
}

impl Shape {
    /// Reads the shape of a component (or a module) from its bytes.
    pub fn read(bytes: &[u8]) -> Result<Shape, wasmparser::BinaryReaderError> {
        let mut shape = Shape::default();
        for payload in Parser::new(0).parse_all(bytes) {
            match payload? {
                Payload::InstanceSection(instances) => {
                    for instance in instances {
                        if let Instance::Instantiate { .. } = instance? {
                            shape.core_instances = shape.core_instances.saturating_add(1);
                        }
                    }
                }
                Payload::MemorySection(memories) => {
                    for memory in memories {
                        let memory = memory?;
                        let page = memory
                            .page_size_log2
                            .map_or(DEFAULT_PAGE_BYTES, |log2| 1u64 << log2.min(16));
                        shape.memories = shape.memories.saturating_add(1);
                        shape.initial_memory = shape
                            .initial_memory
                            .max(memory.initial.saturating_mul(page));
                    }
                }
                // The count is the section's own claim, read before its entries: a forged one
                // must not overflow (the file is refused when compiled).
                Payload::TableSection(tables) => {
                    shape.tables = shape.tables.saturating_add(tables.count())
                }
                _ => {}
            }
        }
        Ok(shape)
    }
}

/// A size as limits are said: MiB with one decimal, or KiB below one MiB.
pub fn size_text(bytes: u64) -> String {
    if bytes < 1 << 20 {
        format!("{:.0} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module with two memories of 3 and 200 pages and one table, by hand.
    fn module() -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        // Table section: one funcref table, min 1.
        m.extend([4, 4, 1, 0x70, 0, 1]);
        // Memory section: two memories, min 3 and min 200 (LEB128: 0xc8 0x01).
        m.extend([5, 6, 2, 0, 3, 0, 0xc8, 0x01]);
        m
    }

    #[test]
    fn a_module_s_memories_and_tables_are_counted() {
        let shape = Shape::read(&module()).unwrap();
        assert_eq!(
            shape,
            Shape {
                core_instances: 0,
                memories: 2,
                tables: 1,
                initial_memory: 200 * 65536,
            }
        );
        assert_eq!(size_text(shape.initial_memory), "12.5 MiB");
        assert_eq!(size_text(64 << 10), "64 KiB");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Shape::read(b"\0asm\x01\0\0\0\x05\xff").is_err());
        // Two table sections that each claim u32::MAX tables (LEB128 ff ff ff ff 0f).
        let mut forged = b"\0asm\x01\0\0\0".to_vec();
        for _ in 0..2 {
            forged.extend([4, 5, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        }
        let _ = Shape::read(&forged);
    }
}
