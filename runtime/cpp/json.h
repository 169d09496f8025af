/* A small JSON reader: enough for the engine's `gsmlp build` JSON and the label list of the metadata. */
#ifndef GSMLP_SAMPLE_JSON_H
#define GSMLP_SAMPLE_JSON_H

#include <string>
#include <utility>
#include <vector>

namespace gsmlp::sample::json
{

struct Value
{
    enum class Type
    {
        kNULL,
        kBOOL,
        kNUMBER,
        kSTRING,
        kARRAY,
        kOBJECT
    };
    Type type{Type::kNULL};
    bool boolean{false};
    double number{0.0};
    std::string string;
    std::vector<Value> array;
    std::vector<std::pair<std::string, Value>> object; // in file order

    //! The member `key` of an object, or nullptr.
    Value const* find(std::string const& key) const;
};

//! Parses all of `text` (RFC 8259; strings are UTF-8, \u escapes become UTF-8). On failure returns false and
//! says where and why in `error`.
bool parse(std::string const& text, Value& out, std::string& error);

} // namespace gsmlp::sample::json

#endif // GSMLP_SAMPLE_JSON_H
