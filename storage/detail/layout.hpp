// Private to storage/: key builders and record codecs of the physical layout documented in
// storage/README.md. Decoders treat their input as untrusted (it comes from disk): they check
// version bytes, lengths and enum ranges and report what was wrong instead of asserting.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "api/model.hpp"
#include "storage/state_store.hpp"

namespace ei::storage::detail {

enum cf_index : std::size_t {
  cf_meta,
  cf_jobs,
  cf_pages,
  cf_order,
  cf_tracking,
  cf_attempts,
  cf_scratch,
  cf_outcomes,
  cf_count
};
inline constexpr std::array<std::string_view, cf_count> cf_names{
    "meta", "jobs", "pages", "order", "tracking", "attempts", "scratch", "outcomes"};
/// Column families added after schema 1 was first released: a store that lacks them is not
/// corrupt; open() creates them.
inline constexpr std::array<std::string_view, 2> cf_optional_names{"scratch", "outcomes"};

/// First byte of every record value (except meta/"schema", which is the schema text itself).
inline constexpr std::uint8_t format_v1 = 1;
inline constexpr char tag_record = 'R';
inline constexpr char tag_watermarks = 'W';
inline constexpr std::string_view schema_key = "schema";
inline constexpr std::string_view sink_key_prefix = "sink/";
/// meta `sink-identity/<name>`: v1, u64 LE device, u64 LE inode of the file sink <name> writes.
inline constexpr std::string_view sink_identity_key_prefix = "sink-identity/";

inline constexpr std::size_t job_key_size = 17;
inline constexpr std::size_t page_key_size = 24;
inline constexpr std::size_t order_key_size = 20;
inline constexpr std::size_t tracking_key_size = 32;
inline constexpr std::size_t attempt_key_size = 24;
inline constexpr std::size_t order_entry_size = 18;
inline constexpr std::size_t scratch_key_size = 25;

// -- keys ---------------------------------------------------------------------------------
std::string job_key(const api::uuid& job, char tag);
std::string page_prefix(const api::uuid& job, std::uint32_t epoch);
std::string page_key(const api::uuid& job, std::uint32_t epoch, std::uint32_t page_no);
std::string order_key(const api::uuid& job, std::uint32_t chunk_no);
std::string tracking_key(const api::uuid& job, const api::uuid& item);
std::string attempt_key(const api::uuid& job, std::uint64_t seq);
/// job + space u8 + run u32 + segment u32 (sorted runs of an ordering in progress).
std::string scratch_key(const api::uuid& job, std::uint8_t space, std::uint32_t run,
                        std::uint32_t segment);
/// The job id as a 16-byte key prefix.
std::string job_prefix(const api::uuid& job);
/// An exclusive upper bound above every key that starts with `prefix` and is at most
/// prefix.size() + 16 bytes longer (all our keys).
std::string prefix_end(std::string_view prefix);
api::uuid uuid_at(std::string_view bytes);  // first 16 bytes; caller checks the size
std::uint32_t be32_at(std::string_view bytes);
std::uint64_t be64_at(std::string_view bytes);

// -- values -------------------------------------------------------------------------------
void encode_job(const job_record& job, std::string& out);
void encode_watermarks(const watermarks& w, std::string& out);
void encode_page(const page_record& page, std::string& out);
void encode_tracking(const api::tracking_fields& t, std::string& out);
void encode_order_chunk(std::span<const order_entry> entries, std::string& out);
void encode_attempt(std::uint32_t attempt, std::string& out);
void encode_sink_offset(std::uint64_t offset, std::string& out);

/// Each decoder returns an empty string on success, else what was wrong (for the message).
std::string decode_job(std::string_view in, job_record& out);
std::string decode_watermarks(std::string_view in, watermarks& out);
/// Decodes a page; tracking fields of items are left empty (they live in the tracking CF)
/// and `flagged` receives the indexes of items whose flags say a tracking record exists.
std::string decode_page(std::string_view in, page_record& out, std::vector<std::size_t>& flagged);
/// Decodes a page's header into `header` (items left empty) and its items as order entries
/// (has_tracking from the flags), without materialising listed items.
std::string decode_page_entries(std::string_view in, page_record& header,
                                std::vector<order_entry>& entries);
std::string decode_tracking(std::string_view in, api::tracking_fields& out);
std::string decode_order_chunk(std::string_view in, std::vector<order_entry>& out);
std::string decode_attempt(std::string_view in, std::uint32_t& out);
std::string decode_sink_offset(std::string_view in, std::uint64_t& out);
/// The sink identity codec lives in state_store.cpp (beside bind_sink).
void encode_sink_identity(const file_identity& id, std::string& out);
std::string decode_sink_identity(std::string_view in, file_identity& out);
/// A scratch segment: v1, u8 record width (> 0), then whole records of that width.
void encode_scratch_segment(std::uint8_t width, std::span<const std::uint8_t> records,
                            std::string& out);
std::string check_scratch_segment(std::string_view in);

// -- outcomes (storage/outcomes.cpp): write-back of item outcomes and job completion ---------
inline constexpr char tag_outcome = 'I';
inline constexpr char tag_completion = 'C';
inline constexpr std::size_t outcome_key_size = 33;     // job + 'I' + item
inline constexpr std::size_t completion_key_size = 17;  // job + 'C'
std::string outcome_key(const api::uuid& job, const api::uuid& item);
void encode_outcome(const item_outcome& o, std::string& out);
/// `out.item` is not part of the value (it is the key's); the caller sets it.
std::string decode_outcome(std::string_view in, item_outcome& out);
/// Empty when `o` may be written, else what is wrong with it (status, seq, state).
std::string outcome_problem(const item_outcome& o);
void encode_completion(const completion_record& c, std::string& out);
std::string decode_completion(std::string_view in, completion_record& out);

}  // namespace ei::storage::detail
