#include "json.h"

#include <cstdlib>
#include <cstring>

namespace gsmlp::sample::json
{
namespace
{

constexpr int kMAX_DEPTH = 64; // the engine JSON nests 3 deep; a deeper file is not one of ours

class Parser
{
public:
    explicit Parser(std::string const& text)
        : mText(text)
    {
    }

    bool document(Value& out, std::string& error)
    {
        bool ok = value(out, 0);
        skipSpace();
        if (ok && mPos != mText.size())
        {
            ok = fail("unexpected text after the JSON value");
        }
        if (!ok)
        {
            error = mError + " (at byte " + std::to_string(mPos) + ")";
        }
        return ok;
    }

private:
    bool fail(char const* why)
    {
        if (mError.empty())
        {
            mError = why;
        }
        return false;
    }

    void skipSpace()
    {
        while (mPos < mText.size() && std::strchr(" \t\r\n", mText[mPos]) != nullptr)
        {
            ++mPos;
        }
    }

    bool literal(char const* word)
    {
        size_t const length = std::strlen(word);
        if (mText.compare(mPos, length, word) != 0)
        {
            return fail("invalid literal");
        }
        mPos += length;
        return true;
    }

    bool value(Value& out, int depth)
    {
        if (depth > kMAX_DEPTH)
        {
            return fail("nested too deeply");
        }
        skipSpace();
        if (mPos >= mText.size())
        {
            return fail("unexpected end of the text");
        }
        char const c = mText[mPos];
        switch (c)
        {
        case '{': return object(out, depth);
        case '[': return array(out, depth);
        case '"': out.type = Value::Type::kSTRING; return string(out.string);
        case 't': out.type = Value::Type::kBOOL, out.boolean = true; return literal("true");
        case 'f': out.type = Value::Type::kBOOL, out.boolean = false; return literal("false");
        case 'n': out.type = Value::Type::kNULL; return literal("null");
        default: return number(out);
        }
    }

    bool number(Value& out)
    {
        char const* start = mText.c_str() + mPos;
        char* end = nullptr;
        if (*start != '-' && (*start < '0' || *start > '9'))
        {
            return fail("expected a value");
        }
        out.type = Value::Type::kNUMBER;
        out.number = std::strtod(start, &end);
        mPos += static_cast<size_t>(end - start);
        return true;
    }

    bool hex4(unsigned& code)
    {
        if (mPos + 4 > mText.size())
        {
            return fail("truncated \\u escape");
        }
        code = 0;
        for (int i = 0; i < 4; ++i)
        {
            char const h = mText[mPos++];
            unsigned const digit = (h >= '0' && h <= '9') ? h - '0'
                : (h >= 'a' && h <= 'f')                  ? h - 'a' + 10
                : (h >= 'A' && h <= 'F')                  ? h - 'A' + 10
                                                          : 16U;
            if (digit > 15)
            {
                return fail("bad \\u escape");
            }
            code = code * 16 + digit;
        }
        return true;
    }

    static void appendUtf8(std::string& out, unsigned code)
    {
        if (code < 0x80)
        {
            out += static_cast<char>(code);
        }
        else if (code < 0x800)
        {
            out += static_cast<char>(0xC0 | (code >> 6));
            out += static_cast<char>(0x80 | (code & 0x3F));
        }
        else if (code < 0x10000)
        {
            out += static_cast<char>(0xE0 | (code >> 12));
            out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (code & 0x3F));
        }
        else
        {
            out += static_cast<char>(0xF0 | (code >> 18));
            out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (code & 0x3F));
        }
    }

    bool escape(std::string& out)
    {
        char const c = mText[mPos++];
        char const* const from = "\"\\/bfnrt";
        char const* const to = "\"\\/\b\f\n\r\t";
        if (char const* at = std::strchr(from, c); at != nullptr && c != '\0')
        {
            out += to[at - from];
            return true;
        }
        if (c != 'u')
        {
            return fail("bad escape in a string");
        }
        unsigned code = 0;
        if (!hex4(code))
        {
            return false;
        }
        if (code >= 0xD800 && code < 0xDC00) // a UTF-16 surrogate pair
        {
            unsigned low = 0;
            if (mText.compare(mPos, 2, "\\u") != 0 || (mPos += 2, !hex4(low)) || low < 0xDC00 || low > 0xDFFF)
            {
                return fail("unpaired surrogate in a \\u escape");
            }
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
        }
        appendUtf8(out, code);
        return true;
    }

    bool string(std::string& out)
    {
        ++mPos; // the opening quote
        while (mPos < mText.size())
        {
            char const c = mText[mPos];
            if (c == '"')
            {
                ++mPos;
                return true;
            }
            if (static_cast<unsigned char>(c) < 0x20)
            {
                return fail("control character in a string");
            }
            ++mPos;
            if (c == '\\')
            {
                if (mPos >= mText.size() || !escape(out))
                {
                    return fail("bad escape in a string");
                }
                continue;
            }
            out += c;
        }
        return fail("unterminated string");
    }

    // Shared by arrays and objects: items separated by commas up to `close`.
    template <typename Item>
    bool items(char close, Item&& item)
    {
        ++mPos; // the opening bracket
        skipSpace();
        if (mPos < mText.size() && mText[mPos] == close)
        {
            ++mPos;
            return true;
        }
        while (true)
        {
            if (!item())
            {
                return false;
            }
            skipSpace();
            if (mPos < mText.size() && mText[mPos] == ',')
            {
                ++mPos;
                continue;
            }
            if (mPos < mText.size() && mText[mPos] == close)
            {
                ++mPos;
                return true;
            }
            return fail(close == ']' ? "expected , or ] in an array" : "expected , or } in an object");
        }
    }

    bool array(Value& out, int depth)
    {
        out.type = Value::Type::kARRAY;
        return items(']', [&] {
            out.array.emplace_back();
            return value(out.array.back(), depth + 1);
        });
    }

    bool object(Value& out, int depth)
    {
        out.type = Value::Type::kOBJECT;
        return items('}', [&] {
            skipSpace();
            if (mPos >= mText.size() || mText[mPos] != '"')
            {
                return fail("expected a member name");
            }
            std::string key;
            if (!string(key))
            {
                return false;
            }
            skipSpace();
            if (mPos >= mText.size() || mText[mPos] != ':')
            {
                return fail("expected : after a member name");
            }
            ++mPos;
            out.object.emplace_back(std::move(key), Value{});
            return value(out.object.back().second, depth + 1);
        });
    }

    std::string const& mText;
    size_t mPos{0};
    std::string mError;
};

} // namespace

Value const* Value::find(std::string const& key) const
{
    for (auto const& [name, member] : object)
    {
        if (name == key)
        {
            return &member;
        }
    }
    return nullptr;
}

bool parse(std::string const& text, Value& out, std::string& error)
{
    out = Value{};
    return Parser(text).document(out, error);
}

} // namespace gsmlp::sample::json
